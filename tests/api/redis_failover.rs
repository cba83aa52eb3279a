//! A Redis Sentinel failover in the middle of use loses nothing the API promised: a
//! revoked session stays refused (even if the promoted replica never received its
//! key: replication is asynchronous, and the database is the truth), a reset token
//! can be requested again and works, and the limits spent before the failover still
//! hold after it. Two instances run on a Sentinel set of the test's own
//! (`PrivateSentinel`), so the failover disturbs no other test.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Behind the local proxy, so that the test can choose each request's client address.
const PROXIED: (&str, &str) = ("TRUSTED_PROXIES", "127.0.0.1/32");
const NEW_PASSWORD: &str = "a brand new passphrase 9";

/// `requestPasswordReset` for `email`, sent for `client`.
async fn request_reset_from(app: &TestApp, email: &str, client: &str) -> Value {
    let body = json!({
        "query": "mutation($e: String!) { requestPasswordReset(email: $e) }",
        "variables": { "e": email },
    });
    let resp = app.post_raw(&body, &[("x-forwarded-for", client)]).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Asks for a reset link for `email` from `client`, and returns the token it mails.
async fn reset_token_from(app: &TestApp, email: &str, client: &str) -> String {
    let resets = || {
        app.mail
            .to(email)
            .into_iter()
            .filter(ReceivedMail::is_reset)
            .count()
    };
    let before = resets();
    data(
        &request_reset_from(app, email, client).await,
        "requestPasswordReset",
    );
    eventually(Duration::from_secs(10), "a reset mail", || async {
        let mails: Vec<ReceivedMail> = app
            .mail
            .to(email)
            .into_iter()
            .filter(ReceivedMail::is_reset)
            .collect();
        mails
            .get(before)
            .map(ReceivedMail::reset_token)
            .ok_or(format!("{} reset mail(s)", mails.len()))
    })
    .await
}

fn assert_refused(app: &TestApp, body: &Value, which: &str) {
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{which} on {}: {body}",
        app.url
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn a_sentinel_failover_loses_no_revocation_reset_or_limit() {
    // Two instances need the database they share; the embedded default is one.
    require_postgres();
    let set = PrivateSentinel::start().await;
    let url = set.url();
    let settings = [
        ("REDIS_URL", url.as_str()),
        // One reset request per client a minute; a login cool-down of ten minutes:
        // both far longer than the failover takes.
        ("RATE_LIMIT_RESET_PER_IP_PER_MINUTE", "1"),
        ("RATE_LIMIT_LOGIN_FAILURES", "3"),
        ("RATE_LIMIT_LOGIN_BASE_DELAY", "600"),
        PROXIED,
    ];
    let a = spawn_app_with(&settings).await;
    let b = a.sibling(&settings).await;
    a.wait_trusting().await;
    b.wait_trusting().await;

    // Before: a session logged out, one alive, a reset link mailed, an account
    // cooling down after failed logins, a client that spent its reset requests.
    let email = unique_email();
    let revoked = a.signed_up(&email).await;
    let alive = Session::from_payload(data(&b.login(&email, PASSWORD).await, "login"));
    data(&a.logout(&revoked.refresh).await, "logout");
    for app in [&a, &b] {
        assert_refused(app, &app.me(Some(&revoked.access)).await, "before");
    }
    let mailed_before = reset_token_from(&a, &email, "198.51.100.21").await;
    let cooled = unique_email();
    a.signed_up(&cooled).await;
    for app in [&a, &b, &a] {
        assert_code(
            &app.login(&cooled, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    retry_after(&b.login(&cooled, PASSWORD).await);
    let spender = "198.51.100.23";
    data(
        &request_reset_from(&a, &cooled, spender).await,
        "requestPasswordReset",
    );
    retry_after(&request_reset_from(&b, &cooled, spender).await);

    // The failover, while both instances are connected.
    let new = set.failover().await;
    // As if the replica had not received the revocation before it was promoted.
    let keys = redis_cli_at(new, &["--scan", "--pattern", "*revoked:sid:*"]);
    for key in keys.lines() {
        redis_cli_at(new, &["del", key]);
    }
    // Both instances follow the sentinel to the new primary and rebuild their memory.
    for app in [&a, &b] {
        app.wait_check("redis", "ok", Duration::from_secs(20)).await;
        app.wait_trusting().await;
    }
    // An instance that starts now knows only what the database and Redis tell it.
    let c = a.sibling(&settings).await;
    c.wait_trusting().await;

    // Revocations: still refused everywhere; the live session still works.
    for app in [&a, &b, &c] {
        assert_refused(
            app,
            &app.me(Some(&revoked.access)).await,
            "after the failover",
        );
        assert_code(&app.refresh(&revoked.refresh).await, "INVALID_TOKEN");
        data(&app.me(Some(&alive.access)).await, "me");
    }
    // Written back to the new primary for everyone.
    eventually(
        Duration::from_secs(10),
        "the revocation is back in Redis",
        || async {
            let keys = redis_cli_at(new, &["--scan", "--pattern", "*revoked:sid:*"]);
            (!keys.is_empty()).then_some(()).ok_or(keys)
        },
    )
    .await;

    // Limits: what was spent before still counts, on every instance.
    for app in [&a, &b, &c] {
        retry_after(&app.login(&cooled, PASSWORD).await);
        retry_after(&request_reset_from(app, &cooled, spender).await);
    }
    // And counting goes on, on the new primary, shared by every instance.
    let newcomer = "198.51.100.24";
    data(
        &request_reset_from(&c, &cooled, newcomer).await,
        "requestPasswordReset",
    );
    retry_after(&request_reset_from(&a, &cooled, newcomer).await);

    // Reset: a link asked for again works, on any instance, and only once; the one
    // mailed before the failover no longer does (replaced, or lost with the primary).
    let token = reset_token_from(&c, &email, "198.51.100.22").await;
    assert_code(
        &a.reset_password(&mailed_before, NEW_PASSWORD, NEW_PASSWORD)
            .await,
        "INVALID_TOKEN",
    );
    data(
        &b.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "resetPassword",
    );
    assert_code(
        &a.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "INVALID_TOKEN",
    );
    data(&a.login(&email, NEW_PASSWORD).await, "login");
}

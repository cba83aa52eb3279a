//! Rate limits per client IP and per account.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn every_mutation_counts_against_the_ip_budget() {
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MINUTE", "6")]).await;
    let outcomes = [
        app.register_as("bad", "", "x", "y").await,
        app.login("nobody@example.com", PASSWORD).await,
        app.refresh("unknown").await,
        app.logout("unknown").await,
        app.request_reset("nobody@example.com").await,
        app.reset_password("unknown", NEW_PASSWORD, NEW_PASSWORD)
            .await,
    ];
    for resp in &outcomes {
        assert_ne!(
            resp["errors"][0]["extensions"]["code"], "RATE_LIMITED",
            "{resp}"
        );
    }
    for resp in [
        app.logout("unknown").await,
        app.register(&unique_email()).await,
    ] {
        assert!(retry_after(&resp) >= 1, "{resp}");
    }
    // Queries are not limited by it.
    assert_code(&app.me(None).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn mutations_are_rate_limited_per_client_ip() {
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MINUTE", "3")]).await;
    for _ in 0..3 {
        assert_code(
            &app.login("nobody@example.com", PASSWORD).await,
            "INVALID_CREDENTIALS",
        );
    }
    let limited = app.login("nobody@example.com", PASSWORD).await;
    assert_code(&limited, "RATE_LIMITED");
    let retry = limited["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!((1..=20).contains(&retry), "{limited}");
    // Queries are not mutations: `me` still answers.
    assert_code(&app.me(None).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn reset_requests_and_token_guesses_have_tighter_ip_budgets() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_RESET_PER_IP_PER_MINUTE", "2"),
        ("RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE", "3"),
    ])
    .await;
    let email = unique_email();
    app.signed_up(&email).await;
    for _ in 0..2 {
        data(
            &app.request_reset("nobody@example.com").await,
            "requestPasswordReset",
        );
    }
    retry_after(&app.request_reset("nobody@example.com").await);
    for guess in ["a", "b", "c"] {
        assert_code(
            &app.reset_password(guess, NEW_PASSWORD, NEW_PASSWORD).await,
            "INVALID_TOKEN",
        );
    }
    retry_after(&app.reset_password("d", NEW_PASSWORD, NEW_PASSWORD).await);
    // Other mutations are not held back by those classes.
    data(&app.login(&email, PASSWORD).await, "login");
}

#[tokio::test]
async fn failed_logins_slow_an_account_down_for_a_growing_bounded_time() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_LOGIN_FAILURES", "3"),
        ("RATE_LIMIT_LOGIN_BASE_DELAY", "2"),
        ("RATE_LIMIT_LOGIN_MAX_DELAY", "8"),
    ])
    .await;
    // The waits are asserted to the second: a busy machine must not shorten them.
    app.freeze_clock();
    let email = unique_email();
    app.signed_up(&email).await;
    for _ in 0..3 {
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    // Cooling down: even the right password waits, and is told how long.
    assert_eq!(retry_after(&app.login(&email, PASSWORD).await), 2);
    // Another account from the same client is not affected.
    let other = unique_email();
    app.signed_up(&other).await;
    data(&app.login(&other, PASSWORD).await, "login");

    // Each further failure doubles the wait, up to the bound.
    let mut waits = Vec::new();
    for _ in 0..4 {
        app.advance(8);
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
        waits.push(retry_after(&app.login(&email, "wrong password").await));
    }
    assert_eq!(waits, [4, 8, 8, 8]);

    // Never a permanent lockout: after the wait, the owner signs in, and starts afresh.
    app.advance(8);
    data(&app.login(&email, PASSWORD).await, "login");
    for _ in 0..3 {
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    retry_after(&app.login(&email, PASSWORD).await);
}

#[tokio::test]
async fn unknown_emails_are_throttled_alike() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "2")]).await;
    for _ in 0..2 {
        assert_code(
            &app.login("nobody@example.com", PASSWORD).await,
            "INVALID_CREDENTIALS",
        );
    }
    // The answer cannot tell a registered address from an unknown one.
    retry_after(&app.login("  NOBODY@example.com", PASSWORD).await);
}

#[tokio::test]
async fn a_password_reset_lifts_the_login_back_off() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "2")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    for _ in 0..2 {
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    retry_after(&app.login(&email, PASSWORD).await);
    let token = app.reset_token_for(&email).await;
    data(
        &app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "resetPassword",
    );
    data(&app.login(&email, NEW_PASSWORD).await, "login");
}

#[tokio::test]
async fn reset_mails_per_account_are_capped_silently() {
    let app = spawn_app_with(&[("RATE_LIMIT_RESET_PER_ACCOUNT", "2")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    for _ in 0..4 {
        assert_eq!(
            data(&app.request_reset(&email).await, "requestPasswordReset"),
            true
        );
    }
    app.settle().await;
    assert_eq!(
        app.mail.to(&email).len(),
        2,
        "the cap holds, and the answer stays true"
    );
}

#[tokio::test]
async fn fifty_login_aliases_are_refused_or_each_counted() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "3")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    let document = |n: usize| {
        let fields: String = (0..n)
            .map(|i| {
                format!(
                    "a{i}: login(input: {{email: $e, password: \"guess {i}\"}}) {{ tokenType }} "
                )
            })
            .collect();
        json!({ "query": format!("mutation($e: String!) {{ {fields} }}"), "variables": { "e": email } })
    };
    // By default such a document is refused before anything runs...
    let resp: Value = app.post_raw(&document(50), &[]).await.json().await.unwrap();
    assert_code(&resp, "GRAPHQL_VALIDATION_FAILED");
    data(&app.login(&email, PASSWORD).await, "login");

    // ...and where many aliases are allowed, each one is an attempt.
    let lenient = app
        .sibling(&[
            ("RATE_LIMIT_LOGIN_FAILURES", "3"),
            ("GRAPHQL_MAX_ALIASES", "100"),
        ])
        .await;
    let resp: Value = lenient
        .post_raw(&document(50), &[])
        .await
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = resp["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extensions"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 50, "{resp}");
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == "INVALID_CREDENTIALS")
            .count(),
        3,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "RATE_LIMITED").count(),
        47,
        "{codes:?}"
    );
}

#[tokio::test]
async fn a_batch_of_fifty_logins_is_refused_or_each_counted() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "3")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    let batch: Vec<Value> = (0..50)
        .map(|i| {
            json!({ "query": "mutation($i: LoginInput!) { login(input: $i) { tokenType } }",
                    "variables": { "i": { "email": email, "password": format!("guess {i}") } } })
        })
        .collect();
    let batch = Value::Array(batch);
    assert_eq!(app.post_raw(&batch, &[]).await.status(), 400);
    data(&app.login(&email, PASSWORD).await, "login");

    let lenient = app
        .sibling(&[
            ("RATE_LIMIT_LOGIN_FAILURES", "3"),
            ("GRAPHQL_MAX_BATCH", "50"),
        ])
        .await;
    let resp: Value = lenient.post_raw(&batch, &[]).await.json().await.unwrap();
    let codes: Vec<&str> = resp
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["errors"][0]["extensions"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == "INVALID_CREDENTIALS")
            .count(),
        3,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "RATE_LIMITED").count(),
        47,
        "{codes:?}"
    );
}

#[tokio::test]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn two_instances_on_one_redis_share_the_account_budget() {
    // The embedded default keeps counters in process; sharing needs Redis.
    require_postgres();
    let a = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "4")]).await;
    let b = a.sibling(&[("RATE_LIMIT_LOGIN_FAILURES", "4")]).await;
    let email = unique_email();
    a.signed_up(&email).await;
    for app in [&a, &b, &a, &b] {
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    // Four failures in all, two on each: both instances now refuse.
    retry_after(&a.login(&email, PASSWORD).await);
    retry_after(&b.login(&email, PASSWORD).await);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MINUTE", "2")]).await;
    let logout = json!({ "query": "mutation { logout(refreshToken: \"x\") }" });
    for ip in ["198.51.100.1", "198.51.100.2"] {
        let resp: Value = app
            .post_raw(&logout, &[("x-forwarded-for", ip)])
            .await
            .json()
            .await
            .unwrap();
        data(&resp, "logout");
    }
    let resp: Value = app
        .post_raw(&logout, &[("x-forwarded-for", "198.51.100.3")])
        .await
        .json()
        .await
        .unwrap();
    retry_after(&resp);
    app.settle().await;
    let events = app.audit_events().await;
    assert!(
        events
            .iter()
            .all(|(_, _, ip)| ip.as_deref() == Some("127.0.0.1")),
        "{events:?}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_IP_PER_MINUTE", "2"),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    let logout = json!({ "query": "mutation { logout(refreshToken: \"x\") }" });
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        for _ in 0..2 {
            let resp: Value = app
                .post_raw(&logout, &[("x-forwarded-for", ip)])
                .await
                .json()
                .await
                .unwrap();
            data(&resp, "logout");
        }
    }
    // A client's own forged entry on the left does not help it either.
    let resp: Value = app
        .post_raw(
            &logout,
            &[("x-forwarded-for", "203.0.113.50, 198.51.100.1")],
        )
        .await
        .json()
        .await
        .unwrap();
    retry_after(&resp);
    let events = app.audit_events().await;
    assert!(
        events
            .iter()
            .any(|(event, _, ip)| event == "rate_limited" && ip.as_deref() == Some("198.51.100.1")),
        "{events:?}"
    );
}

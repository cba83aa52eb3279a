//! Races on credentials: a login whose password check was under way when the password
//! was reset, or the account deactivated, leaves no live session and never writes its
//! re-hash over the newer password.

use std::time::{Duration, Instant};

use crate::support::*;

/// Argon2 parameters that make one verify take about a second, so a reset can commit
/// while a login is still checking the old password (a slow machine only widens the
/// window; the request timeout leaves room for it).
const SLOW: &[(&str, &str)] = &[
    ("ARGON2_MEMORY_KIB", "65536"),
    ("ARGON2_ITERATIONS", "15"),
    ("HTTP_REQUEST_TIMEOUT", "120"),
];
/// Other (still slow) parameters: a login on an instance with these re-hashes.
const SLOW_OTHER: &[(&str, &str)] = &[
    ("ARGON2_MEMORY_KIB", "65536"),
    ("ARGON2_ITERATIONS", "16"),
    ("HTTP_REQUEST_TIMEOUT", "120"),
];
/// Cheap parameters, for the instance that resets the password quickly.
const FAST: &[(&str, &str)] = &[("ARGON2_MEMORY_KIB", "8192"), ("ARGON2_ITERATIONS", "1")];

/// Runs `login` and, once it has had time to start verifying, `during`; returns the
/// login's answer after checking that `during` finished while the login was still
/// running (otherwise the test proves nothing: the window was too short).
async fn while_logging_in<L, D>(login: L, during: D) -> serde_json::Value
where
    L: std::future::Future<Output = serde_json::Value>,
    D: std::future::Future<Output = ()>,
{
    let ((resp, login_done), during_done) = tokio::join!(
        async {
            let resp = login.await;
            (resp, Instant::now())
        },
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            during.await;
            Instant::now()
        }
    );
    assert!(
        during_done < login_done,
        "the login finished before the change committed: widen the window"
    );
    resp
}

async fn live_sessions(app: &TestApp) -> Vec<String> {
    app.sql_string("SELECT CAST(revoked_at IS NULL AS TEXT) FROM sessions")
        .await
        .into_iter()
        .filter(|live| live == "1" || live == "true")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_checking_the_old_password_during_a_reset_leaves_no_session() {
    // The account's hash is slow to verify; the login runs on an instance with other
    // parameters, so a successful check re-hashes; the reset runs on a fast instance.
    let slow = spawn_app_with(SLOW).await;
    let email = unique_email();
    slow.signed_up(&email).await;
    let rehashing = slow.sibling(SLOW_OTHER).await;
    let fast = slow.sibling(FAST).await;
    let token = fast.reset_token_for(&email).await;

    let resp = while_logging_in(rehashing.login(&email, PASSWORD), async {
        let reset = fast
            .reset_password(&token, NEW_PASSWORD, NEW_PASSWORD)
            .await;
        assert_eq!(data(&reset, "resetPassword"), true);
    })
    .await;

    if resp.get("errors").is_some() {
        assert_code(&resp, "INVALID_CREDENTIALS");
    } else {
        let session = Session::from_payload(data(&resp, "login"));
        assert_code(&fast.refresh(&session.refresh).await, "INVALID_TOKEN");
    }
    assert!(
        live_sessions(&fast).await.is_empty(),
        "no session outlives the reset"
    );
    // The stored hash is the reset's: the new password works, the old one does not.
    assert_code(&fast.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");
    data(&fast.login(&email, NEW_PASSWORD).await, "login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_checking_the_password_during_a_deactivation_leaves_no_session() {
    let app = spawn_app_with(SLOW).await;
    let email = unique_email();
    app.signed_up(&email).await;
    // The registration's session ends first: what is left is the login's.
    app.sql("UPDATE sessions SET revoked_at = created_at, revoked_reason = 'logout'")
        .await;

    let resp = while_logging_in(app.login(&email, PASSWORD), app.deactivate(&email)).await;

    if resp.get("errors").is_some() {
        assert_code(&resp, "INVALID_CREDENTIALS");
    } else {
        let session = Session::from_payload(data(&resp, "login"));
        assert_code(&app.refresh(&session.refresh).await, "INVALID_TOKEN");
    }
    assert!(
        live_sessions(&app).await.is_empty(),
        "no session of a deactivated account is live"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_logins_that_both_re_hash_the_same_password_both_succeed() {
    // Each checks the old hash, then re-hashes; the second's conditional write finds
    // the first's hash, checks the password against it, and goes on.
    let slow = spawn_app_with(SLOW).await;
    let email = unique_email();
    slow.signed_up(&email).await;
    let rehashing = slow
        .sibling(&[SLOW_OTHER, &[("PASSWORD_HASH_CONCURRENCY", "2")]].concat())
        .await;
    let (a, b) = tokio::join!(
        rehashing.login(&email, PASSWORD),
        rehashing.login(&email, PASSWORD)
    );
    for resp in [a, b] {
        let session = Session::from_payload(data(&resp, "login"));
        data(&rehashing.me(Some(&session.access)).await, "me");
    }
    data(&slow.login(&email, PASSWORD).await, "login");
}

//! The audit trail: every security event stored, never a secret.

use crate::support::*;

#[tokio::test]
async fn security_events_are_recorded_without_secrets() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "2")]).await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    assert_code(
        &app.login(&email, "wrong password").await,
        "INVALID_CREDENTIALS",
    );
    let second = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    data(&app.refresh(&second.refresh).await, "refreshToken");
    app.advance(11);
    assert_code(&app.refresh(&second.refresh).await, "INVALID_TOKEN");
    data(&app.logout(&session.refresh).await, "logout");
    let token = app.reset_token_for(&email).await;
    data(
        &app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "resetPassword",
    );
    for _ in 0..2 {
        assert_code(
            &app.login(&email, "wrong again").await,
            "INVALID_CREDENTIALS",
        );
    }
    assert_code(&app.login(&email, NEW_PASSWORD).await, "RATE_LIMITED");

    let events = app.audit_events().await;
    let names: Vec<&str> = events.iter().map(|(e, _, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "registered",
            "login_failed",
            "login_succeeded",
            "refresh_reuse_detected",
            "logout",
            "password_reset_requested",
            "password_reset_completed",
            "login_failed",
            "login_failed",
            "login_throttled",
        ]
    );
    for (event, user, ip) in &events {
        assert_eq!(ip.as_deref(), Some("127.0.0.1"), "{event}");
        if event != "login_throttled" {
            assert_eq!(user.as_deref(), Some(session.user_id.as_str()), "{event}");
        }
    }
    // No column of any row holds a password or a token.
    let db_dump = app
        .sql_string("SELECT event || '|' || COALESCE(ip, '') || '|' || COALESCE(user_agent, '') FROM audit_events")
        .await
        .join("\n");
    for secret in [
        PASSWORD,
        NEW_PASSWORD,
        "wrong password",
        &token,
        &session.refresh,
        &session.access,
        &second.refresh,
    ] {
        assert!(!db_dump.contains(secret), "secret in the audit trail");
    }
}

#[tokio::test]
async fn rate_limits_are_recorded() {
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MINUTE", "1")]).await;
    data(&app.logout("x").await, "logout");
    assert_code(&app.logout("x").await, "RATE_LIMITED");
    let events = app.audit_events().await;
    assert!(
        events.iter().any(|(e, _, _)| e == "rate_limited"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_flood_of_refused_requests_writes_few_rows_that_count_them_all() {
    let app = spawn_app_with(&[("RATE_LIMIT_IP_PER_MINUTE", "1")]).await;
    data(&app.logout("x").await, "logout");
    let refused = 500;
    for _ in 0..refused {
        assert_code(&app.logout("x").await, "RATE_LIMITED");
    }
    app.settle().await;
    let rows = app
        .sql_string("SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = 'rate_limited'")
        .await[0]
        .parse::<u64>()
        .unwrap();
    // A few in full, the rest of the minute as one row.
    assert!(
        (1..=10).contains(&rows),
        "{rows} audit rows for {refused} refused requests"
    );
    // Nothing is lost: the rows say how many refusals each stands for.
    let total = app
        .sql_string(
            "SELECT CAST(SUM(occurrences) AS TEXT) FROM audit_events WHERE event = 'rate_limited'",
        )
        .await[0]
        .clone();
    assert_eq!(total, refused.to_string());
    // The metric counts every one.
    let metrics = app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "identity_audit_events_total{event=\"rate_limited\"}"
        ),
        f64::from(refused)
    );
}

//! Retention: ended sessions and finished mail are purged after their time, not before.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn ended_sessions_and_finished_mail_are_purged_after_their_retention() {
    let app = spawn_app_with(&[
        ("REFRESH_TOKEN_TTL", "60"),
        ("ACCESS_TOKEN_TTL", "30"),
        ("SESSION_RETENTION", "30"),
        ("OUTBOX_RETENTION", "30"),
        ("RETENTION_INTERVAL", "1"),
    ])
    .await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    data(&app.request_reset(&email).await, "requestPasswordReset");
    app.settle().await;
    let count = |table: &'static str| {
        let app = &app;
        async move {
            app.sql_string(&format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}"))
                .await[0]
                .clone()
        }
    };
    let sent = "outbox WHERE sent_at IS NOT NULL";
    assert_eq!(
        count(sent).await,
        "2",
        "the verification and reset mails went out"
    );

    // Purges run every second; within their retention, nothing goes. Real time passes
    // on purpose: a purge that deletes nothing leaves no trace to wait for, so the test
    // lets at least two of them run.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count("sessions").await, "1");
    assert_eq!(count("refresh_tokens").await, "1");
    assert_eq!(count(sent).await, "2");
    data(&app.refresh(&session.refresh).await, "refreshToken");

    // Past the session's expiry plus its retention, and the mail's retention: gone,
    // refresh tokens with their session; the account stays.
    app.advance(60 + 30 + 1);
    eventually(Duration::from_secs(10), "purged", || async {
        let (sessions, outbox) = (count("sessions").await, count("outbox").await);
        if sessions == "0" && outbox == "0" {
            Ok(())
        } else {
            Err(format!("{sessions} session(s) and {outbox} mail(s) left"))
        }
    })
    .await;
    assert_eq!(count("refresh_tokens").await, "0");
    assert_eq!(count("users").await, "1");
    data(&app.login(&email, PASSWORD).await, "login");
    assert_eq!(count("sessions").await, "1", "a new session is kept");
}

#[tokio::test]
async fn revoked_sessions_are_purged_their_retention_after_they_ended() {
    // Long before their expiry: a revoked session's IP and user agent go with it, once
    // its retention and its access tokens' lifetime are over.
    let app = spawn_app_with(&[
        ("SESSION_RETENTION", "30"),
        ("ACCESS_TOKEN_TTL", "60"),
        ("RETENTION_INTERVAL", "1"),
    ])
    .await;
    app.freeze_clock();
    let email = unique_email();
    let ended = app.signed_up(&email).await;
    data(&app.logout(&ended.refresh).await, "logout");
    app.advance(50);
    let live = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    // Past the retention, not yet past the access tokens' lifetime: kept.
    app.advance(1);
    let revoked = "SELECT CAST(COUNT(*) AS TEXT) FROM sessions WHERE revoked_at IS NOT NULL";
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.sql_string(revoked).await, ["1"]);
    app.advance(20);
    eventually(Duration::from_secs(10), "purged", || async {
        let left = app.sql_string(revoked).await;
        if left == ["0"] {
            Ok(())
        } else {
            Err(format!("{left:?} revoked session(s) left"))
        }
    })
    .await;
    let all = app
        .sql_string("SELECT CAST(COUNT(*) AS TEXT) FROM sessions")
        .await;
    assert_eq!(all, ["1"], "the live session is kept");
    data(&app.me(Some(&live.access)).await, "me");
}

#[tokio::test]
async fn audit_events_are_purged_after_their_retention() {
    let app = spawn_app_with(&[("AUDIT_RETENTION", "30"), ("RETENTION_INTERVAL", "1")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    app.settle().await;
    // Past the registration's retention; a login is new.
    app.advance(31);
    data(&app.login(&email, PASSWORD).await, "login");
    eventually(Duration::from_secs(10), "the old event purged", || async {
        let events = app.audit_events().await;
        let names: Vec<&str> = events.iter().map(|(e, _, _)| e.as_str()).collect();
        if names == ["login_succeeded"] {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    })
    .await;
    assert_eq!(count_users(&app).await, "1", "the account stays");
}

async fn count_users(app: &TestApp) -> String {
    app.sql_string("SELECT CAST(COUNT(*) AS TEXT) FROM users")
        .await[0]
        .clone()
}

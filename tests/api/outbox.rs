//! Durable mail: the outbox waits for the SMTP server, never sends an expired link
//! late, and sends each mail once however many instances run.

use std::time::{Duration, Instant};

use crate::support::*;

async fn outbox_rows(app: &TestApp) -> Vec<(String, Option<String>, Option<String>, i64)> {
    let db = app.db().await;
    use sea_orm::ConnectionTrait;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT kind, text_body, last_error, attempts FROM outbox ORDER BY created_at",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get_by_index::<String>(0).unwrap(),
                r.try_get_by_index::<Option<String>>(1).unwrap(),
                r.try_get_by_index::<Option<String>>(2).unwrap(),
                r.try_get_by_index::<i32>(3).map(i64::from).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn mail_waits_for_the_smtp_server_and_is_sent_once() {
    let sink = MailSink::down();
    let app = spawn_app_with_mail(sink.clone(), &[]).await;
    let email = unique_email();
    app.signed_up(&email).await;

    let started = Instant::now();
    assert_eq!(
        data(&app.request_reset(&email).await, "requestPasswordReset"),
        true
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered in {:?}",
        started.elapsed()
    );
    app.settle().await;
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].3 >= 1 && rows[0].2.is_some(),
        "a failed attempt is recorded: {rows:?}"
    );

    sink.resume();
    app.advance(5 * 60);
    app.settle().await;
    let mails = sink.to(&email);
    assert_eq!(mails.len(), 1);
    let token = mails[0].reset_token();
    data(
        &app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "resetPassword",
    );
    // The sent row no longer holds the link.
    let rows = outbox_rows(&app).await;
    assert_eq!(rows[0].1, None, "{rows:?}");
    // Nothing is sent twice, however often the worker looks.
    app.advance(3 * 3600);
    app.settle().await;
    let resets = sink
        .to(&email)
        .into_iter()
        .filter(|m| m.subject().starts_with("Reset"))
        .count();
    assert_eq!(resets, 1);
}

#[tokio::test]
async fn an_expired_reset_mail_is_never_sent_late() {
    let sink = MailSink::down();
    let app = spawn_app_with_mail(sink.clone(), &[("PASSWORD_RESET_TTL", "600")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    data(&app.request_reset(&email).await, "requestPasswordReset");
    app.settle().await;
    sink.resume();
    app.advance(601);
    app.settle().await;
    assert!(sink.to(&email).is_empty(), "an expired link is not mailed");
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, None, "body erased: {rows:?}");
    assert_eq!(rows[0].2.as_deref(), Some("expired"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_mail_once() {
    let a = spawn_app().await;
    let b = a.sibling(&[]).await;
    let emails: Vec<String> = (0..6).map(|_| unique_email()).collect();
    for email in &emails {
        a.signed_up(email).await;
    }
    for (i, email) in emails.iter().enumerate() {
        let app = if i % 2 == 0 { &a } else { &b };
        data(&app.request_reset(email).await, "requestPasswordReset");
    }
    let (x, y) = tokio::join!(a.settle(), b.settle());
    let ((), ()) = (x, y);
    for email in &emails {
        assert_eq!(a.mail.to(email).len(), 1, "{email}");
    }
}

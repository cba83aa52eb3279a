//! Durable mail: the outbox waits for the SMTP server, never sends an expired link
//! late, and sends each mail once however many instances run.

use std::time::{Duration, Instant};

use crate::support::*;

/// The outbox rows, but for the verification mails every registration queues.
async fn outbox_rows(app: &TestApp) -> Vec<(String, Option<String>, Option<String>, i64)> {
    let db = app.db().await;
    use sea_orm::ConnectionTrait;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT kind, text_body, last_error, attempts FROM outbox \
             WHERE kind <> 'verify_email' ORDER BY created_at",
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

    let token = delivered_reset_token(&app, &sink, &email).await;
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
    let (sink, app, email) = reset_waiting_for_smtp(&[("PASSWORD_RESET_TTL", "600")]).await;
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

/// Every column of every outbox row, joined: what someone reading the table sees.
async fn outbox_contents(app: &TestApp) -> Vec<String> {
    app.sql_string(
        "SELECT kind || ' ' || recipient || ' ' || subject || ' ' || COALESCE(text_body, '') \
         || ' ' || COALESCE(html_body, '') || ' ' || COALESCE(last_error, '') FROM outbox",
    )
    .await
}

#[tokio::test]
async fn a_queued_reset_mail_holds_no_readable_link() {
    // Queued, and waiting for the SMTP server: what the table holds meanwhile.
    let (sink, app, email) = reset_waiting_for_smtp(&[]).await;
    let stored = outbox_contents(&app).await;
    assert!(
        stored.iter().any(|row| row.starts_with("password_reset")),
        "{stored:?}"
    );
    let link = RESET_URL.split("{token}").next().unwrap();
    for row in &stored {
        assert!(
            !row.contains("reset-password") && !row.contains(link),
            "an outbox row holds the reset link: {row}"
        );
    }

    let token = delivered_reset_token(&app, &sink, &email).await;
    for row in &stored {
        assert!(
            !row.contains(&token),
            "an outbox row holds the token: {row}"
        );
    }
    data(
        &app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "resetPassword",
    );
    data(&app.login(&email, NEW_PASSWORD).await, "login");
}

#[tokio::test]
async fn a_mail_that_does_not_decrypt_is_given_up_never_sent() {
    let (sink, app, email) = reset_waiting_for_smtp(&[]).await;
    // The text body of one row sealed into another's place: it no longer opens.
    app.sql("UPDATE outbox SET text_body = html_body WHERE kind = 'password_reset'")
        .await;
    sink.resume();
    app.advance(5 * 60);
    app.settle().await;
    assert!(sink.to(&email).is_empty(), "nothing garbled is sent");
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1, None, "body erased: {rows:?}");
    assert!(
        rows[0]
            .2
            .as_deref()
            .unwrap_or("")
            .contains("cannot decrypt"),
        "{rows:?}"
    );
    assert!(
        app.metrics()
            .await
            .contains("identity_mail_total{result=\"undecryptable\"} 1"),
        "counted"
    );
}

#[tokio::test]
async fn mail_queued_before_a_secret_rotation_is_still_sent() {
    // This instance retries only in ten minutes (its clock stays): the next one sends.
    let (sink, app, email) = reset_waiting_for_smtp(&[("OUTBOX_RETRY_BASE", "600")]).await;
    // A new instance with a new secret, the old one kept as previous.
    let rotated = app
        .sibling(&[
            (
                "SECRET_KEY",
                "a-new-secret-after-the-rotation-Zq8wX3vLp0rT7yB",
            ),
            ("SECRET_KEY_PREVIOUS", SECRET),
        ])
        .await;
    sink.resume();
    rotated.advance(15 * 60);
    rotated.settle().await;
    let mails = sink.to(&email);
    assert_eq!(mails.len(), 1, "{:?}", outbox_rows(&rotated).await);
    assert!(mails[0].text().contains("reset-password"), "readable link");
}

/// A round slower than the lease must not let another instance send its mail again:
/// two instances, a slow SMTP server, and clocks that move on with each mail received
/// (each about as long as a delivery could take, for the deliveries in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_round_never_lets_another_instance_send_the_same_mail() {
    const MAILS: usize = 32;
    let limits = [("RATE_LIMIT_RESET_PER_IP_PER_MINUTE", "1000")];
    let sink = MailSink::down();
    let a = spawn_app_with_mail(sink.clone(), &limits).await;
    let b = a.sibling(&limits).await;
    let emails: Vec<String> = (0..MAILS).map(|_| unique_email()).collect();
    for email in &emails {
        a.signed_up(email).await;
    }
    for email in &emails {
        data(&a.request_reset(email).await, "requestPasswordReset");
    }
    // Every mail tried once while the server was down: all due again together.
    a.settle().await;
    sink.set_reply_delay(Duration::from_millis(300));
    sink.resume();
    a.advance(60);
    b.advance(60);
    let step = Duration::from_millis(2500);
    let mut seen = 0;
    eventually(
        Duration::from_secs(120),
        "a reset mail to every address",
        || {
            let all = sink.all();
            for _ in seen..all.len() {
                a.clock.advance(step);
                b.clock.advance(step);
            }
            seen = all.len();
            let missing = emails.iter().filter(|e| sink.to(e).is_empty()).count();
            async move {
                if missing == 0 {
                    Ok(())
                } else {
                    Err(format!("{missing} address(es) without mail"))
                }
            }
        },
    )
    .await;
    sink.set_reply_delay(Duration::ZERO);
    a.advance(3600);
    b.advance(3600);
    let (x, y) = tokio::join!(a.settle(), b.settle());
    let ((), ()) = (x, y);
    for email in &emails {
        assert_eq!(sink.to(email).len(), 1, "mails received by {email}");
    }
}

/// The SMTP server accepts connections but answers more slowly than `SMTP_TIMEOUT`:
/// requests do not wait for it, `/readyz` says so (and stays 200), and once it is fast
/// again the mail arrives, once, and readiness is back to ok by itself.
#[tokio::test]
async fn a_slow_smtp_server_delays_mail_but_loses_none() {
    let sink = MailSink::start();
    let app = spawn_app_with_mail(sink.clone(), &[("SMTP_TIMEOUT", "1")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    let delay = Duration::from_secs(5);
    sink.set_reply_delay(delay);

    let started = Instant::now();
    assert_eq!(
        data(&app.request_reset(&email).await, "requestPasswordReset"),
        true
    );
    assert!(
        started.elapsed() < delay,
        "answered without waiting for the server: {:?}",
        started.elapsed()
    );
    let readiness = |want: &'static str| {
        let app = &app;
        async move {
            let resp = app.get("/readyz").await;
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap();
            if status == 200 && body["checks"]["mail"]["status"] == want {
                Ok(body)
            } else {
                Err(format!("{status} {body}"))
            }
        }
    };
    let body = eventually(Duration::from_secs(10), "/readyz: mail degraded", || {
        readiness("degraded")
    })
    .await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(
        body["checks"]["mail"]["error"], "deliveries are timing out",
        "{body}"
    );
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    assert!(sink.to(&email).is_empty());

    sink.set_reply_delay(Duration::ZERO);
    app.advance(5 * 60);
    sink.wait_for(&email, 1).await;
    let body = eventually(Duration::from_secs(10), "/readyz: mail ok", || {
        readiness("ok")
    })
    .await;
    assert_eq!(body["status"], "ready", "{body}");
    app.advance(3600);
    app.settle().await;
    assert_eq!(sink.to(&email).len(), 1, "sent once");
}

/// Lets the sink take mail again, lets the worker's retry come due, and returns the
/// token of the one reset mail `email` got.
async fn delivered_reset_token(app: &TestApp, sink: &MailSink, email: &str) -> String {
    sink.resume();
    app.advance(5 * 60);
    app.settle().await;
    let mails = sink.to(email);
    assert_eq!(mails.len(), 1, "one reset mail");
    mails[0].reset_token()
}

/// A signed-up user's reset mail, queued while the SMTP server is down: the sink (to
/// resume), the app and the address.
async fn reset_waiting_for_smtp(overrides: &[(&str, &str)]) -> (MailSink, TestApp, String) {
    let sink = MailSink::down();
    let app = spawn_app_with_mail(sink.clone(), overrides).await;
    let email = unique_email();
    app.signed_up(&email).await;
    data(&app.request_reset(&email).await, "requestPasswordReset");
    app.settle().await;
    (sink, app, email)
}

#[tokio::test]
async fn a_burst_of_resets_queues_exactly_one_mail_per_address() {
    // More addresses than one statement names or writes (64): the reset worker's
    // batches are looked up and queued in pieces, all of a batch or none.
    let app = spawn_app_with(&[
        ("RATE_LIMIT_IP_PER_MINUTE", "100000"),
        ("RATE_LIMIT_RESET_PER_IP_PER_MINUTE", "100000"),
    ])
    .await;
    let emails: Vec<String> = (0..150).map(|_| unique_email()).collect();
    for batch in emails.chunks(25) {
        futures::future::join_all(batch.iter().map(|e| app.signed_up(e))).await;
    }
    let answers = futures::future::join_all(emails.iter().map(|e| app.request_reset(e))).await;
    for answer in &answers {
        assert_eq!(data(answer, "requestPasswordReset"), true, "{answer}");
    }
    let db = app.db().await;
    use sea_orm::ConnectionTrait;
    let per_address = || async {
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT recipient, COUNT(*) FROM outbox WHERE kind = 'password_reset' \
                 GROUP BY recipient",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.try_get_by_index::<String>(0).unwrap(),
                    r.try_get_by_index::<i64>(1).unwrap(),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    eventually(
        Duration::from_secs(20),
        "every address has its reset mail",
        || async {
            let queued = per_address().await;
            (queued.len() == emails.len())
                .then_some(())
                .ok_or_else(|| format!("{} of {}", queued.len(), emails.len()))
        },
    )
    .await;
    let queued = per_address().await;
    for email in &emails {
        assert_eq!(queued.get(email), Some(&1), "{email}: one mail, not two");
    }
}

//! `refreshToken`: rotation, the grace window, reuse detection, expiry.

use std::collections::HashSet;

use crate::support::*;

#[tokio::test]
async fn refresh_rotates_the_token() {
    let app = spawn_app().await;
    let first = app.signed_up(&unique_email()).await;
    let resp = app.refresh(&first.refresh).await;
    let payload = data(&resp, "refreshToken");
    assert_eq!(payload["tokenType"], "Bearer");
    assert_eq!(payload["expiresIn"], 900);
    assert_eq!(payload["user"]["id"], first.user_id.as_str());
    let second = Session::from_payload(payload);
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    data(&app.me(Some(&second.access)).await, "me");
    // The successor rotates in turn.
    let third = Session::from_payload(data(&app.refresh(&second.refresh).await, "refreshToken"));
    assert_ne!(third.refresh, second.refresh);
}

#[tokio::test]
async fn within_the_grace_window_a_rotated_token_gets_the_same_successor() {
    let app = spawn_app().await;
    let first = app.signed_up(&unique_email()).await;
    let a = Session::from_payload(data(&app.refresh(&first.refresh).await, "refreshToken"));
    app.advance(5);
    let b = Session::from_payload(data(&app.refresh(&first.refresh).await, "refreshToken"));
    assert_eq!(a.refresh, b.refresh);
    assert_ne!(a.access, b.access, "each answer has a fresh access token");
    // Even after the successor itself rotated.
    let c = Session::from_payload(data(&app.refresh(&a.refresh).await, "refreshToken"));
    let again = Session::from_payload(data(&app.refresh(&first.refresh).await, "refreshToken"));
    assert_eq!(again.refresh, a.refresh);
    data(&app.me(Some(&c.access)).await, "me");
}

#[tokio::test]
async fn replay_after_the_grace_window_revokes_the_whole_family() {
    let app = spawn_app_with(&[("REFRESH_REUSE_GRACE", "10")]).await;
    let email = unique_email();
    let first = app.signed_up(&email).await;
    let other = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    let second = Session::from_payload(data(&app.refresh(&first.refresh).await, "refreshToken"));
    app.advance(11);
    // The old token is replayed: reuse.
    assert_code(&app.refresh(&first.refresh).await, "INVALID_TOKEN");
    // Its successor is dead too, and so are the family's access tokens, at once.
    assert_code(&app.refresh(&second.refresh).await, "INVALID_TOKEN");
    assert_code(&app.me(Some(&second.access)).await, "UNAUTHENTICATED");
    assert_code(&app.me(Some(&first.access)).await, "UNAUTHENTICATED");
    // Another session of the same user is not touched.
    data(&app.me(Some(&other.access)).await, "me");
    data(&app.refresh(&other.refresh).await, "refreshToken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_refreshes_with_one_token_all_succeed_with_one_successor() {
    let app = spawn_app().await;
    let first = app.signed_up(&unique_email()).await;
    let answers = futures::future::join_all((0..10).map(|_| app.refresh(&first.refresh))).await;
    let mut successors = HashSet::new();
    for resp in &answers {
        successors.insert(Session::from_payload(data(resp, "refreshToken")).refresh);
    }
    assert_eq!(successors.len(), 1, "one successor: {successors:?}");
    let successor = successors.into_iter().next().unwrap();
    let next = Session::from_payload(data(&app.refresh(&successor).await, "refreshToken"));
    data(&app.me(Some(&next.access)).await, "me");
    assert_eq!(
        app.sql_string("SELECT token_hash FROM refresh_tokens")
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn refresh_tokens_expire_at_the_end_of_the_session() {
    let app = spawn_app_with(&[("REFRESH_TOKEN_TTL", "120")]).await;
    let first = app.signed_up(&unique_email()).await;
    app.advance(60);
    let second = Session::from_payload(data(&app.refresh(&first.refresh).await, "refreshToken"));
    // Rotation does not extend the session's absolute lifetime.
    app.advance(61);
    assert_code(&app.refresh(&second.refresh).await, "INVALID_TOKEN");
}

#[tokio::test]
async fn unknown_tokens_are_invalid() {
    let app = spawn_app().await;
    assert_code(&app.refresh("").await, "INVALID_TOKEN");
    assert_code(&app.refresh("not-a-token").await, "INVALID_TOKEN");
    assert_code(&app.refresh(&"x".repeat(10_000)).await, "INVALID_TOKEN");
    let session = app.signed_up(&unique_email()).await;
    // An access token is not a refresh token.
    assert_code(&app.refresh(&session.access).await, "INVALID_TOKEN");
}

#[tokio::test]
async fn reuse_detection_mails_the_user() {
    let app = spawn_app().await;
    let email = unique_email();
    let first = app.signed_up(&email).await;
    data(&app.refresh(&first.refresh).await, "refreshToken");
    app.advance(11);
    assert_code(&app.refresh(&first.refresh).await, "INVALID_TOKEN");
    let mail = app.mail.wait_for(&email, 1).await.remove(0);
    assert!(
        mail.subject().contains("signed out for your safety"),
        "{}",
        mail.subject()
    );
    assert!(!mail.text().contains(&first.refresh));
}

#[tokio::test]
async fn on_sqlite_a_junk_refresh_token_does_not_wait_for_the_write_lock() {
    if backend() != Backend::Embedded {
        return;
    }
    let app = spawn_app().await;
    // Another writer holds the database's write lock (the server's busy timeout is 5 s).
    let db = app.db().await;
    let writer = sea_orm::TransactionTrait::begin_with_options(
        &db,
        sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let resp = app.refresh("not-a-token-anyone-was-given").await;
    let took = started.elapsed();
    writer.rollback().await.unwrap();
    assert_code(&resp, "INVALID_TOKEN");
    assert!(
        took < std::time::Duration::from_secs(3),
        "a junk token waited {took:?} for the write lock"
    );
}

//! Redis or the database going away: answers stay bounded, nothing fails open,
//! readiness names what is missing, and the service recovers by itself.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn with_redis_down_reset_stays_uniform_and_closed_while_the_rest_works() {
    // The embedded default has no Redis to lose.
    require_postgres();
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(&[("REDIS_URL", url.as_str())]).await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let token = app.reset_token_for(&email).await;
    let other = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    data(&app.logout(&other.refresh).await, "logout");

    redis.stop();
    let started = Instant::now();
    let bounded = Duration::from_secs(10);

    // The same answer for known and unknown addresses.
    assert_eq!(
        data(&app.request_reset(&email).await, "requestPasswordReset"),
        true
    );
    assert_eq!(
        data(
            &app.request_reset("nobody@example.com").await,
            "requestPasswordReset"
        ),
        true
    );
    // A reset cannot be verified: it fails, and the password stays.
    assert_code(
        &app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "INTERNAL_SERVER_ERROR",
    );
    // Login, refresh and me keep working (me falls back to the sessions table, so a
    // logged-out session stays logged out).
    let fresh = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    data(&app.me(Some(&fresh.access)).await, "me");
    data(&app.me(Some(&session.access)).await, "me");
    assert_code(&app.me(Some(&other.access)).await, "UNAUTHENTICATED");
    data(&app.refresh(&fresh.refresh).await, "refreshToken");
    data(&app.logout(&fresh.refresh).await, "logout");
    assert_code(
        &app.login(&email, NEW_PASSWORD).await,
        "INVALID_CREDENTIALS",
    );
    // Failed logins are still limited, in process.
    let limited = spawn_limit(&app, &email).await;
    assert!(limited, "login back-off holds without Redis");
    assert!(
        started.elapsed() < bounded,
        "answers took {:?}",
        started.elapsed()
    );

    // /readyz answers from a check at most a second old: let that answer age out.
    app.advance(2);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);

    // Redis back: the service reconnects by itself, without a restart.
    redis.restart().await;
    let body = app.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(body["status"], "ready", "{body}");
}

#[tokio::test]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn readiness_names_redis_when_it_goes_and_recovers_when_it_returns() {
    // The embedded default has no Redis.
    require_postgres();
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(&[("REDIS_URL", url.as_str())]).await;
    assert_eq!(
        app.wait_ready(Duration::from_secs(5)).await["status"],
        "ready"
    );
    redis.stop();
    // /readyz answers from a check at most a second old: let that answer age out.
    app.advance(2);
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["redis"]["status"], "error", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    redis.restart().await;
    assert_eq!(
        app.wait_ready(Duration::from_secs(30)).await["status"],
        "ready"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn after_a_database_outage_the_service_recovers_by_itself() {
    // A SQLite file cannot go away like a server.
    require_postgres();
    let pg = PrivatePostgres::start();
    let url = pg.url();
    let app = spawn_app_with(&[
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_ACQUIRE_TIMEOUT", "2"),
    ])
    .await;
    let email = unique_email();
    let session = app.signed_up(&email).await;

    pg.stop_server();
    // /readyz answers from a check at most a second old: let that answer age out.
    app.advance(2);
    let started = Instant::now();
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["status"], "error", "{body}");
    assert_eq!(app.get("/healthz").await.status(), 200);
    // Requests fail with a clear code, in bounded time.
    assert_code(&app.login(&email, PASSWORD).await, "INTERNAL_SERVER_ERROR");
    assert_code(
        &app.me(Some(&session.access)).await,
        "INTERNAL_SERVER_ERROR",
    );
    assert_code(
        &app.register(&unique_email()).await,
        "INTERNAL_SERVER_ERROR",
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );

    pg.start_server();
    assert_eq!(
        app.wait_ready(Duration::from_secs(30)).await["status"],
        "ready"
    );
    data(&app.login(&email, PASSWORD).await, "login");
    data(&app.me(Some(&session.access)).await, "me");
}

/// Fails logins for `email` until refused; whether that happened within 10 tries.
async fn spawn_limit(app: &TestApp, email: &str) -> bool {
    for _ in 0..10 {
        if code(&app.login(email, "wrong password").await) == "RATE_LIMITED" {
            return true;
        }
    }
    false
}

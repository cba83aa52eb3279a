//! Dependencies that answer, but slowly or not at all in time: Redis behind added
//! latency, and a database pool held by slow queries. In each, no request waits past
//! its timeout, nothing is lost, `/readyz` says what is wrong while it is wrong, and
//! the service recovers by itself.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::support::*;

/// Longer than any answer may take here: the request timeout the tests run with.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn with_redis_slow_answers_stay_bounded_nothing_is_lost_and_readiness_says_so() {
    // The embedded default has no Redis.
    require_postgres();
    let redis = PrivateRedis::start().await;
    let proxy = LatencyProxy::start(SocketAddr::from(([127, 0, 0, 1], redis.port))).await;
    let slow = proxy.redis_url();
    let direct = redis.url();
    // `a` reaches Redis through the proxy, `b` directly: what `a` does while Redis is
    // slow must reach `b` too.
    let a = spawn_app_with(&[("REDIS_URL", slow.as_str()), ("REDIS_TIMEOUT", "1")]).await;
    let b = a.sibling(&[("REDIS_URL", direct.as_str())]).await;
    let email = unique_email();
    let first = a.signed_up(&email).await;
    let second = Session::from_payload(data(&a.login(&email, PASSWORD).await, "login"));
    a.wait_trusting().await;
    b.wait_trusting().await;

    // 100 ms each way: every Redis round trip of `a` takes 200 ms longer.
    proxy.set_delay(Duration::from_millis(100));
    let (status, body) = a
        .wait_check("redis", "degraded", Duration::from_secs(10))
        .await;
    assert_eq!(
        status, 200,
        "slow is not down: the instance stays in rotation: {body}"
    );
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["redis"]["error"], "slow", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");

    let started = Instant::now();
    // A logout on the slow instance holds on both.
    data(&a.logout(&second.refresh).await, "logout");
    for app in [&a, &b] {
        assert_code(&app.me(Some(&second.access)).await, "UNAUTHENTICATED");
    }
    // A reset token goes through the slow Redis and still works; the reset signs the
    // first session out everywhere.
    let token = a.reset_token_for(&email).await;
    assert_eq!(
        data(
            &a.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
            "resetPassword"
        ),
        true
    );
    for app in [&a, &b] {
        assert_code(&app.me(Some(&first.access)).await, "UNAUTHENTICATED");
    }
    let third = Session::from_payload(data(&a.login(&email, NEW_PASSWORD).await, "login"));
    data(&a.me(Some(&third.access)).await, "me");
    data(&b.me(Some(&third.access)).await, "me");
    assert!(
        started.elapsed() < 6 * REQUEST_TIMEOUT,
        "took {:?}",
        started.elapsed()
    );

    // Slower than the Redis timeout: answers come from the fallbacks, in bounded time,
    // and revoked sessions stay revoked.
    proxy.set_delay(Duration::from_secs(3));
    let stalled = Instant::now();
    let fourth = Session::from_payload(data(&a.login(&email, NEW_PASSWORD).await, "login"));
    data(&a.logout(&fourth.refresh).await, "logout");
    assert_code(&a.me(Some(&fourth.access)).await, "UNAUTHENTICATED");
    assert_code(&a.me(Some(&second.access)).await, "UNAUTHENTICATED");
    data(&a.me(Some(&third.access)).await, "me");
    assert!(
        stalled.elapsed() < 4 * REQUEST_TIMEOUT,
        "took {:?}",
        stalled.elapsed()
    );
    let (status, body) = a
        .wait_check("redis", "error", Duration::from_secs(20))
        .await;
    assert_eq!(status, 503, "{body}");

    // Redis fast again: ready by itself, the memory trusted again, and the logout made
    // while Redis stalled known to the other instance too.
    proxy.set_delay(Duration::ZERO);
    let (status, body) = a.wait_check("redis", "ok", Duration::from_secs(30)).await;
    assert_eq!(status, 200, "{body}");
    a.wait_trusting().await;
    for app in [&a, &b] {
        assert_code(&app.me(Some(&fourth.access)).await, "UNAUTHENTICATED");
    }
    b.wait_trusting().await;
    assert_code(&b.me(Some(&fourth.access)).await, "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn with_the_database_pool_held_by_slow_queries_answers_stay_bounded_and_readiness_says_so() {
    // Slow queries holding pooled connections are a server's; a SQLite writer waits on
    // the file lock instead (see the refresh tests).
    require_postgres();
    let app = std::sync::Arc::new(
        spawn_app_with(&[
            ("DATABASE_MAX_CONNECTIONS", "2"),
            ("DATABASE_ACQUIRE_TIMEOUT", "1"),
        ])
        .await,
    );
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let other = unique_email();
    app.signed_up(&other).await;

    // An operator's long transaction holds the users table: every login waits on it,
    // holding a pooled connection, until the pool is used up.
    let db = app.db().await;
    let holder = db.begin().await.unwrap();
    holder
        .execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let blocked: Vec<_> = (0..3)
        .map(|_| {
            let app = std::sync::Arc::clone(&app);
            let email = email.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let body = app.login(&email, PASSWORD).await;
                (started.elapsed(), body)
            })
        })
        .collect();

    let (status, body) = app
        .wait_check("database", "error", Duration::from_secs(20))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["checks"]["database"]["error"], "pool exhausted",
        "{body}"
    );
    // Requests that need a connection fail with a clear code, in bounded time.
    let started = Instant::now();
    assert_code(&app.login(&other, PASSWORD).await, "INTERNAL_SERVER_ERROR");
    assert!(
        started.elapsed() < REQUEST_TIMEOUT,
        "took {:?}",
        started.elapsed()
    );

    holder.rollback().await.unwrap();
    for task in blocked {
        let (took, body) = task.await.unwrap();
        assert!(
            took < REQUEST_TIMEOUT + Duration::from_secs(1),
            "a blocked login took {took:?}"
        );
        // Each either signed in after the lock went, or failed with a code.
        if let Some(errors) = body.get("errors") {
            assert!(errors[0]["extensions"]["code"].is_string(), "{body}");
        }
    }
    let (status, body) = app
        .wait_check("database", "ok", Duration::from_secs(30))
        .await;
    assert_eq!(status, 200, "{body}");
    // Nothing lost: the sessions from before still work, and the service signs in.
    data(&app.refresh(&session.refresh).await, "refreshToken");
    data(&app.login(&other, PASSWORD).await, "login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn a_reset_ending_thousands_of_sessions_through_a_distant_redis_reaches_every_instance() {
    // Two instances share one database; the embedded default is one.
    require_postgres();
    let redis = PrivateRedis::start().await;
    let proxy = LatencyProxy::start(SocketAddr::from(([127, 0, 0, 1], redis.port))).await;
    let far = proxy.redis_url();
    let near = redis.url();
    let a = spawn_app_with(&[("REDIS_URL", far.as_str())]).await;
    let b = a.sibling(&[("REDIS_URL", near.as_str())]).await;
    let email = unique_email();
    let session = a.signed_up(&email).await;
    // An account with 20,000 live sessions (a script's logins, say).
    a.sql(
        "INSERT INTO sessions (id, user_id, created_at, expires_at, last_used_at) \
         SELECT gen_random_uuid(), user_id, created_at, expires_at, last_used_at \
         FROM sessions, generate_series(1, 20000)",
    )
    .await;
    let token = a.reset_token_for(&email).await;
    a.wait_trusting().await;
    b.wait_trusting().await;

    // Redis 10 ms away from `a` (20 ms a round trip): a key per round trip would take
    // minutes; the reset must answer within its timeout, and `b` must hear of it.
    proxy.set_delay(Duration::from_millis(10));
    let started = Instant::now();
    let resp = a.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(
        data(&resp, "resetPassword"),
        true,
        "after {:?}",
        started.elapsed()
    );
    assert_code(&a.me(Some(&session.access)).await, "UNAUTHENTICATED");
    // `b` hears of it by itself (the announcement is on its way when `a` answers).
    eventually(
        Duration::from_secs(5),
        "b refuses the old token",
        || async {
            let body = b.me(Some(&session.access)).await;
            if code(&body) == "UNAUTHENTICATED" {
                Ok(())
            } else {
                Err(body.to_string())
            }
        },
    )
    .await;
}

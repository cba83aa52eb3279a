//! Redis or the database going away: answers stay bounded, nothing fails open,
//! readiness names what is missing, and the service recovers by itself.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_saturates_hashing_but_nothing_else_and_passes() {
    // One hashing thread and a short queue, so a flood from a few clients fills it.
    // A request waiting past the timeout would answer 503/408 instead of 200.
    let app = spawn_app_with(&[
        ("PASSWORD_HASH_CONCURRENCY", "1"),
        ("PASSWORD_HASH_QUEUE", "4"),
        ("HTTP_REQUEST_TIMEOUT", "10"),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    let email = unique_email();
    let before = app.signed_up(&email).await;
    let untouched = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    let ready = app.wait_ready(Duration::from_secs(10)).await;
    assert_eq!(
        ready["checks"]["password_hashing"]["status"], "ok",
        "{ready}"
    );

    let stop = std::sync::atomic::AtomicBool::new(false);
    let login = json!({
        "query": "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
    });
    let flood = futures::future::join_all((0..24).map(|n| {
        let stop = &stop;
        let app = &app;
        let login = &login;
        async move {
            let client = format!("198.51.100.{}", n % 6);
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut body = login.clone();
                body["variables"] =
                    json!({ "i": { "email": unique_email(), "password": PASSWORD } });
                let resp = app.post_raw(&body, &[("x-forwarded-for", &client)]).await;
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                answers.push((status, body["errors"][0]["extensions"]["code"].to_string()));
            }
            answers
        }
    }));
    let during = async {
        // While the flood runs, readiness says what is wrong, and stays 200.
        let degraded = eventually(
            Duration::from_secs(60),
            "/readyz shows password_hashing degraded",
            || async {
                let resp = app.get("/readyz").await;
                let status = resp.status();
                let body: Value = resp.json().await.unwrap();
                if status == 200 && body["checks"]["password_hashing"]["status"] == "degraded" {
                    Ok(body)
                } else {
                    Err(format!("{status} {body}"))
                }
            },
        )
        .await;
        assert_eq!(degraded["status"], "degraded", "{degraded}");
        // An existing session is served meanwhile: me and refresh answer.
        let mut session = before.clone();
        for _ in 0..3 {
            data(&app.me(Some(&session.access)).await, "me");
            session =
                Session::from_payload(data(&app.refresh(&session.refresh).await, "refreshToken"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        session
    };
    let (answers, session) = tokio::join!(flood, during);
    let answers: Vec<_> = answers.into_iter().flatten().collect();
    // The flood's own logins were refused or checked: never a timeout, never a 500.
    assert!(
        answers.iter().all(|(status, code)| *status == 200
            && (code == "\"RATE_LIMITED\"" || code == "\"INVALID_CREDENTIALS\"")),
        "{:?}",
        answers
            .iter()
            .filter(
                |(s, c)| *s != 200 || (c != "\"RATE_LIMITED\"" && c != "\"INVALID_CREDENTIALS\"")
            )
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(answers.iter().any(|(_, code)| code == "\"RATE_LIMITED\""));

    // It recovers by itself: readiness is ok again, the owner signs in, and the
    // session from before the flood still refreshes.
    eventually(
        Duration::from_secs(60),
        "/readyz shows password_hashing ok again",
        || async {
            let body: Value = app.get("/readyz").await.json().await.unwrap();
            if body["checks"]["password_hashing"]["status"] == "ok" {
                Ok(())
            } else {
                Err(body.to_string())
            }
        },
    )
    .await;
    data(&app.login(&email, PASSWORD).await, "login");
    data(&app.refresh(&session.refresh).await, "refreshToken");
    data(&app.refresh(&untouched.refresh).await, "refreshToken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_that_could_not_be_hashed_in_time_are_refused_not_timed_out() {
    // Costly hashes on one thread, a long queue and a short request timeout: a burst
    // queued in full would be answered long after the timeout (408).
    let app = spawn_app_with(&[
        ("ARGON2_MEMORY_KIB", "65536"),
        ("ARGON2_ITERATIONS", "4"),
        ("PASSWORD_HASH_CONCURRENCY", "1"),
        ("PASSWORD_HASH_QUEUE", "128"),
        ("PASSWORD_HASH_CLIENT_SHARE", "100"),
        ("HTTP_REQUEST_TIMEOUT", "2"),
    ])
    .await;
    let login = |n: usize| {
        let app = &app;
        async move {
            let body = json!({
                "query": "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
                "variables": { "i": { "email": format!("nobody-{n}@example.com"), "password": PASSWORD } },
            });
            let resp = app.post_raw(&body, &[]).await;
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body["errors"][0]["extensions"]["code"].to_string())
        }
    };
    let answers = futures::future::join_all((0..20).map(login)).await;
    assert!(
        answers.iter().all(|(status, code)| *status == 200
            && (code == "\"RATE_LIMITED\"" || code == "\"INVALID_CREDENTIALS\"")),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|(_, code)| code == "\"INVALID_CREDENTIALS\""),
        "{answers:?}"
    );
}

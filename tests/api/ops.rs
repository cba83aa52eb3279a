//! Operations: metrics, readiness and recovery, durable mail, logs, graceful shutdown,
//! and the deployment files.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn metrics_cover_operations_logins_limits_hashing_pool_and_outbox() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "2")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    data(&app.login(&email, PASSWORD).await, "login");
    for _ in 0..2 {
        assert_code(
            &app.login(&email, "wrong password").await,
            "INVALID_CREDENTIALS",
        );
    }
    assert_code(&app.login(&email, "wrong password").await, "RATE_LIMITED");
    app.reset_token_for(&email).await;
    app.settle().await;

    let text = app.metrics().await;
    for (series, at_least) in [
        (
            "identity_graphql_operations_total{operation=\"login\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "identity_graphql_operations_total{operation=\"login\",outcome=\"INVALID_CREDENTIALS\"}",
            2.0,
        ),
        (
            "identity_graphql_operations_total{operation=\"login\",outcome=\"RATE_LIMITED\"}",
            1.0,
        ),
        (
            "identity_graphql_operations_total{operation=\"register\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "identity_graphql_operation_duration_seconds_count{operation=\"login\"}",
            4.0,
        ),
        ("identity_logins_total{result=\"succeeded\"}", 1.0),
        ("identity_logins_total{result=\"failed\"}", 2.0),
        ("identity_logins_total{result=\"throttled\"}", 1.0),
        ("identity_rate_limited_total{limit=\"login_account\"}", 1.0),
        (
            "identity_http_requests_total{route=\"/graphql\",method=\"POST\",status=\"200\"}",
            6.0,
        ),
        (
            "identity_http_request_duration_seconds_bucket{route=\"/graphql\",le=\"+Inf\"}",
            6.0,
        ),
        (
            "identity_password_hash_duration_seconds_count{op=\"verify\"}",
            3.0,
        ),
        ("identity_mail_total{result=\"sent\"}", 1.0),
        ("identity_db_pool_max_connections", 1.0),
        ("identity_audit_events_total{event=\"login_failed\"}", 2.0),
    ] {
        assert!(
            sample(&text, series) >= at_least,
            "{series} >= {at_least} in:\n{text}"
        );
    }
    for series in [
        "identity_password_hash_queue_depth",
        "identity_db_pool_connections{state=\"idle\"}",
        "identity_db_pool_connections{state=\"in_use\"}",
        "identity_outbox_backlog",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(series)),
            "{series} in:\n{text}"
        );
    }
    assert_eq!(sample(&text, "identity_outbox_backlog"), 0.0);
}

#[tokio::test]
async fn an_unknown_email_costs_one_argon2_verify_like_a_known_one() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let verifies = |text: &str| {
        sample(
            text,
            "identity_password_hash_duration_seconds_count{op=\"verify\"}",
        )
    };
    let before = verifies(&app.metrics().await);
    assert_code(
        &app.login("nobody@example.com", PASSWORD).await,
        "INVALID_CREDENTIALS",
    );
    let after_unknown = verifies(&app.metrics().await);
    assert_code(
        &app.login(&email, "wrong password").await,
        "INVALID_CREDENTIALS",
    );
    let after_known = verifies(&app.metrics().await);
    assert_eq!(after_unknown - before, 1.0);
    assert_eq!(after_known - after_unknown, 1.0);
}

#[tokio::test]
async fn metrics_can_live_on_their_own_listener() {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{metrics_port}");
    let app = spawn_app_with(&[("METRICS_ADDR", addr.as_str())]).await;
    let main = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404);
    let separate = app
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(separate.status(), 200);
    assert!(separate.text().await.unwrap().contains("# TYPE"));
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
    let resp = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["redis"]["status"], "error", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    let health = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
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
    let started = Instant::now();
    let resp = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["status"], "error", "{body}");
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_with_request_ids_and_never_hold_secrets() {
    let storage = Storage::new().await;
    let sink = MailSink::start();
    let mut service = ServiceProcess::start(
        &storage,
        &sink,
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "trace")],
    )
    .await;
    let http = reqwest::Client::new();
    let call =
        |name: &'static str, query: &'static str, variables: Value, bearer: Option<String>| {
            let mut req = http
                .post(format!("{}/graphql", service.url))
                .header("x-request-id", format!("req-{name}"))
                .json(&json!({ "query": query, "variables": variables, "operationName": name }));
            if let Some(token) = bearer {
                req = req.bearer_auth(token);
            }
            async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
        };
    let email = unique_email();
    let reg = call(
        "SignUp",
        "mutation SignUp($i: RegisterInput!) { register(input: $i) { accessToken refreshToken } }",
        json!({ "i": { "email": email, "fullName": "Ada Lovelace", "password": PASSWORD, "passwordConfirm": PASSWORD } }),
        None,
    )
    .await;
    let access = reg["data"]["register"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = reg["data"]["register"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        "Me",
        "query Me { me { id } }",
        json!({}),
        Some(access.clone()),
    )
    .await;
    let renewed = call(
        "Renew",
        "mutation Renew($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }",
        json!({ "t": refresh }),
        None,
    )
    .await;
    let next_refresh = renewed["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        "Forgot",
        "mutation Forgot($e: String!) { requestPasswordReset(email: $e) }",
        json!({ "e": email }),
        None,
    )
    .await;
    let mail = sink.wait_for(&email, 1).await.remove(0);
    let token = mail.reset_token();
    let link = format!("https://app.test/reset-password?token={token}");
    let reset = call(
        "Reset",
        "mutation Reset($i: ResetPasswordInput!) { resetPassword(input: $i) }",
        json!({ "i": { "token": token, "newPassword": NEW_PASSWORD, "newPasswordConfirm": NEW_PASSWORD } }),
        None,
    )
    .await;
    assert_eq!(reset["data"]["resetPassword"], true, "{reset}");
    call(
        "SignIn",
        "mutation SignIn($i: LoginInput!) { login(input: $i) { tokenType } }",
        json!({ "i": { "email": email, "password": NEW_PASSWORD } }),
        None,
    )
    .await;
    service.terminate();
    service.exited(Duration::from_secs(20)).await;

    let output = service.output();
    for secret in [
        PASSWORD,
        NEW_PASSWORD,
        &access,
        &refresh,
        &next_refresh,
        &token,
        &link,
    ] {
        assert!(!output.contains(secret), "a secret appears in the logs");
    }
    let mut request_lines = 0;
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            entry.get("level").is_some() && entry.get("timestamp").is_some(),
            "{line}"
        );
        let Some(spans) = entry.get("spans").and_then(Value::as_array) else {
            continue;
        };
        let Some(request) = spans.iter().find(|s| s["name"] == "request") else {
            continue;
        };
        request_lines += 1;
        let id = request["request_id"].as_str().unwrap_or_default();
        assert!(
            !id.is_empty(),
            "request id on every line of a request: {line}"
        );
        if request["path"] == "/graphql" {
            // Ours: the id the client sent, and the operation it named.
            assert!(
                id.starts_with("req-"),
                "the client's request id is kept: {line}"
            );
            let expected = id.trim_start_matches("req-");
            assert_eq!(
                request["operation"], expected,
                "operation name on every line: {line}"
            );
        }
    }
    assert!(request_lines > 10, "{request_lines} lines inside requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_then_stops() {
    let storage = Storage::new().await;
    let sink = MailSink::start();
    // Hashing made slow on purpose (over a second per login) so a request is in
    // flight when the signal comes.
    let mut service = ServiceProcess::start(
        &storage,
        &sink,
        &[
            ("ARGON2_MEMORY_KIB", "131072"),
            ("ARGON2_ITERATIONS", "6"),
            ("LOG_FORMAT", "json"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let url = service.url.clone();
    let idle = service.thread_cpu_ticks("argon2-");
    let slow = tokio::spawn({
        let http = http.clone();
        let url = url.clone();
        async move {
            http.post(format!("{url}/graphql"))
                .json(&json!({ "query": "mutation { login(input: {email: \"nobody@example.com\", password: \"whatever it is\"}) { tokenType } }" }))
                .send()
                .await
        }
    });
    // Once the request is being served, stop the server: its hashing threads are at
    // work (nothing else hashes in this test); 50 ms of hashing done, a second to go.
    eventually(Duration::from_secs(10), "the login is being hashed", || {
        std::future::ready((service.thread_cpu_ticks("argon2-") >= idle + 5).then_some(()))
    })
    .await;
    service.terminate();
    let resp = slow
        .await
        .unwrap()
        .expect("the in-flight request gets its answer");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_code(&body, "INVALID_CREDENTIALS");

    let status = service.exited(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(
        http.get(format!("{url}/healthz")).send().await.is_err(),
        "no longer accepting"
    );
    let output = service.output();
    assert!(
        output.contains("shutdown signal received") && output.contains("stopped"),
        "{output}"
    );
}

#[test]
fn the_container_builds_with_the_command_ci_runs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |f: &str| std::fs::read_to_string(format!("{root}/{f}")).unwrap();
    let dockerfile = read("Dockerfile");
    let build = read("scripts/build-release");
    assert!(build.contains("cargo build --locked --release"), "{build}");
    assert!(
        dockerfile.contains("scripts/build-release"),
        "the image builds with the CI script"
    );
    assert!(
        read(".ci/run").contains("scripts/build-release")
            || read("scripts/bench").contains("scripts/build-release")
    );
    for needle in [
        "AS build",
        "AS runtime",
        "--mount=type=cache",
        "USER 10001",
        "EXPOSE 8000",
        "HEALTHCHECK",
        "identity\", \"healthcheck",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle:?}");
    }
    let compose = read("docker-compose.yml");
    for needle in [
        "postgres:",
        "redis:",
        "mailpit",
        "condition: service_healthy",
        "healthcheck:",
        ".env.example",
    ] {
        assert!(
            compose.contains(needle),
            "docker-compose.yml lacks {needle:?}"
        );
    }
}

#[test]
fn env_example_documents_every_setting() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    let mut vars = std::collections::HashMap::new();
    vars.insert(
        "SECRET_KEY".to_owned(),
        "test-secret-key-that-is-long-enough-0123456789".to_owned(),
    );
    vars.insert(
        "DATA_DIR".to_owned(),
        std::env::temp_dir()
            .join("identity-env-example")
            .display()
            .to_string(),
    );
    let config = identity::config::Config::from_map(&vars).unwrap();
    for (name, _) in config.describe() {
        assert!(
            example.contains(name),
            "{name} is not documented in .env.example"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_a_fresh_database_all_come_up() {
    let storage = std::sync::Arc::new(Storage::new().await);
    let sink = MailSink::start();
    let (a, b, c) = tokio::join!(
        start(storage.clone(), sink.clone(), &[]),
        start(storage.clone(), sink.clone(), &[]),
        start(storage.clone(), sink.clone(), &[]),
    );
    let email = unique_email();
    a.signed_up(&email).await;
    data(&b.login(&email, PASSWORD).await, "login");
    data(&c.login(&email, PASSWORD).await, "login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_completes_even_if_the_client_goes_away() {
    // Hashing made slow (over a second), so the client can leave mid-operation.
    let app = spawn_app_with(&[("ARGON2_MEMORY_KIB", "131072"), ("ARGON2_ITERATIONS", "6")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    let token = app.reset_token_for(&email).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gone = impatient
        .post(format!("{}/graphql", app.url))
        .json(&json!({ "query": "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) }",
                       "variables": { "i": { "token": token, "newPassword": NEW_PASSWORD, "newPasswordConfirm": NEW_PASSWORD } } }))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up before the answer");
    // The reset ran to its end regardless: the new password works, the token is spent.
    eventually(
        Duration::from_secs(20),
        "the reset completes: the new password works",
        || async {
            let resp = app.login(&email, NEW_PASSWORD).await;
            match resp.get("errors") {
                None => Ok(()),
                Some(_) => Err(resp.to_string()),
            }
        },
    )
    .await;
    assert_code(
        &app.reset_password(&token, "another fine passphrase", "another fine passphrase")
            .await,
        "INVALID_TOKEN",
    );
}

#[tokio::test]
async fn ended_sessions_and_finished_mail_are_purged_after_their_retention() {
    let app = spawn_app_with(&[
        ("REFRESH_TOKEN_TTL", "60"),
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
    assert_eq!(count(sent).await, "1", "the reset mail went out");

    // Purges run every second; within their retention, nothing goes. Real time passes
    // on purpose: a purge that deletes nothing leaves no trace to wait for, so the test
    // lets at least two of them run.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count("sessions").await, "1");
    assert_eq!(count("refresh_tokens").await, "1");
    assert_eq!(count(sent).await, "1");
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

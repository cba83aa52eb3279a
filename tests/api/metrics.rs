//! Prometheus metrics: what operations, logins, limits, hashing, the pool and the
//! outbox report, and a listener of their own.

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
async fn metrics_can_live_on_their_own_listener() {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{metrics_port}");
    let app = spawn_app_with(&[("METRICS_ADDR", addr.as_str())]).await;
    let main = app.get("/metrics").await;
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
async fn an_unknown_http_method_is_counted_as_other() {
    let app = spawn_app().await;
    let method = reqwest::Method::from_bytes(b"FOO").unwrap();
    app.http
        .request(method, format!("{}/graphql", app.url))
        .send()
        .await
        .unwrap();
    let text = app.metrics().await;
    assert!(!text.contains("FOO"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("identity_http_requests_total{")
                && l.contains("method=\"other\"")),
        "{text}"
    );
}

#[tokio::test]
async fn production_serves_metrics_on_the_public_port_only_when_asked() {
    let prod = [("APP_ENV", "production")];
    let app = spawn_app_with(&prod).await;
    let url = format!("{}/metrics", app.url);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 404);
    let asked = app
        .sibling(&[("APP_ENV", "production"), ("METRICS_PUBLIC", "true")])
        .await;
    let url = format!("{}/metrics", asked.url);
    assert_eq!(asked.http.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn readiness_is_checked_at_most_once_a_second() {
    let app = spawn_app().await;
    let checks = |text: &str| sample(text, "identity_readiness_checks_total");
    let url = format!("{}/readyz", app.url);
    app.http.get(&url).send().await.unwrap();
    let before = checks(&app.metrics().await);
    for _ in 0..20 {
        assert_eq!(app.http.get(&url).send().await.unwrap().status(), 200);
    }
    let after = checks(&app.metrics().await);
    // Twenty calls in well under a second: the database was asked at most once more
    // (once if the first answer aged out during the loop).
    assert!(after - before <= 1.0, "{before} -> {after}");
    app.advance(2);
    app.http.get(&url).send().await.unwrap();
    let aged = checks(&app.metrics().await);
    assert_eq!(aged, after + 1.0, "a second later the check runs again");
}

//! GraphQL over HTTP: health and readiness, GraphiQL, GET and POST, JSON bodies,
//! error codes, request ids, batches.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    let store = if backend() == Backend::Postgres {
        "redis"
    } else {
        "tokenStore"
    };
    assert_eq!(body["checks"][store]["status"], "ok", "{body}");
}

#[tokio::test]
async fn graphiql_is_served_to_browsers() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        resp.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
}

#[tokio::test]
async fn queries_over_get_but_never_mutations() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(format!("{}/graphql", app.url))
        .query(&[("query", "{ me { id } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_code(&resp.json::<Value>().await.unwrap(), "UNAUTHENTICATED");

    let email = unique_email();
    let mutation = format!(
        r#"mutation {{ register(input: {{email: "{email}", fullName: "A B", password: "{PASSWORD}", passwordConfirm: "{PASSWORD}"}}) {{ accessToken }} }}"#
    );
    let resp = app
        .http
        .get(format!("{}/graphql", app.url))
        .query(&[("query", mutation.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    // Nothing was registered.
    assert_code(&app.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn only_json_bodies_are_accepted() {
    let app = spawn_app().await;
    let body = r#"{"query":"mutation { logout(refreshToken: \"x\") }"}"#;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let resp = app
            .http
            .post(format!("{}/graphql", app.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{content_type}");
    }
    let resp = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_code(&resp.json::<Value>().await.unwrap(), "BAD_REQUEST");
}

#[tokio::test]
async fn graphql_errors_have_codes() {
    let app = spawn_app().await;
    assert_code(
        &app.graphql("{ me { id ", json!({})).await,
        "GRAPHQL_PARSE_FAILED",
    );
    assert_code(
        &app.graphql("{ me { password } }", json!({})).await,
        "GRAPHQL_VALIDATION_FAILED",
    );
    let wrong_type = app
        .graphql(
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": 42 }),
        )
        .await;
    assert!(
        wrong_type["errors"][0]["extensions"]["code"].is_string(),
        "{wrong_type}"
    );

    // With the GraphQL-over-HTTP media type, a request error is a 400.
    let resp = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ me { password } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/graphql-response+json")
    );
}

#[tokio::test]
async fn responses_carry_a_request_id_and_are_not_cached() {
    let app = spawn_app().await;
    let resp = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("x-request-id", "abc-123")
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let resp = app.get("/healthz").await;
    assert!(
        !resp.headers()["x-request-id"].is_empty(),
        "generated when absent"
    );
}

#[tokio::test]
async fn batches_run_each_operation() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let login = json!({ "query": "mutation($i: LoginInput!) { login(input: $i) { tokenType } }",
                        "variables": { "i": { "email": email, "password": PASSWORD } } });
    let resp: Value = app
        .http
        .post(format!("{}/graphql", app.url))
        .json(&json!([login, { "query": "{ me { id } }" }]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp[0]["data"]["login"]["tokenType"], "Bearer");
    assert_code(&resp[1], "UNAUTHENTICATED");
    let too_many: Vec<Value> = (0..11)
        .map(|_| json!({ "query": "{ me { id } }" }))
        .collect();
    let resp = app
        .http
        .post(format!("{}/graphql", app.url))
        .json(&too_many)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// Reads until the server closes the socket (0 bytes or an error); what it sent is
/// returned. Panics if the socket is still open after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: std::time::Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all)
        .await
        .expect("the server closed the connection");
    seen
}

#[tokio::test]
async fn a_client_that_stops_sending_its_headers_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(&[("HTTP_HEADER_READ_TIMEOUT", "1")]).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    // A request line and half a header, then nothing: the slowloris pattern.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: test\r\nContent-Ty")
        .await
        .unwrap();
    closed_within(&mut stream, std::time::Duration::from_secs(10)).await;
    // Nothing sent at all is the same.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    closed_within(&mut silent, std::time::Duration::from_secs(10)).await;
    // Clients that send their requests are served as before, kept-alive ones included.
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status(), 200);
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(&[("HTTP_MAX_CONNECTIONS", "4")]).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // Each is served (so it holds its place) and stays open, kept alive.
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        idle.push(stream);
    }
    // A fifth connection is accepted by the kernel but not served.
    let mut fifth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let early = tokio::time::timeout(std::time::Duration::from_secs(1), fifth.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the fifth connection was served while four were open: {early:?}"
    );
    // One closes: the fifth is served.
    drop(idle.pop());
    let answer = closed_within(&mut fifth, std::time::Duration::from_secs(10)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    // All close: no lasting harm, the service answers as usual.
    drop(idle);
    eventually(
        std::time::Duration::from_secs(10),
        "the service answers",
        || async {
            let resp = app.get("/healthz").await;
            if resp.status() == 200 {
                Ok(())
            } else {
                Err(resp.status().to_string())
            }
        },
    )
    .await;
    let session = app.signed_up(&unique_email()).await;
    data(&app.me(Some(&session.access)).await, "me");
}

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

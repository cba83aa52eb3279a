//! The GraphQL and HTTP attack surface: document limits, production mode, error
//! hygiene, CORS and security headers.

use serde_json::{Value, json};

use crate::support::*;

async fn query(app: &TestApp, document: &str) -> Value {
    app.post_raw(&json!({ "query": document }), &[])
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn deep_complex_or_directive_heavy_documents_are_refused() {
    let app = spawn_app_with(&[("GRAPHQL_MAX_DEPTH", "6"), ("GRAPHQL_MAX_COMPLEXITY", "20")]).await;
    let deep =
        "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }";
    assert_code(&query(&app, deep).await, "GRAPHQL_VALIDATION_FAILED");
    let wide: String = (0..6)
        .map(|i| format!("f{i}: me {{ id email fullName }} "))
        .collect();
    let lenient = app
        .sibling(&[
            ("GRAPHQL_MAX_COMPLEXITY", "20"),
            ("GRAPHQL_MAX_ALIASES", "100"),
        ])
        .await;
    assert_code(
        &query(&lenient, &format!("{{ {wide} }}")).await,
        "GRAPHQL_VALIDATION_FAILED",
    );
    let directives: String = (0..9).map(|_| "@include(if: true) ").collect();
    assert_code(
        &query(&app, &format!("{{ __typename {directives} }}")).await,
        "GRAPHQL_VALIDATION_FAILED",
    );
    assert_code(&query(&app, "{ me { id } }").await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn directives_on_fragments_operations_and_variables_are_limited_too() {
    let app = spawn_app().await;
    let nine: String = (0..9).map(|_| "@include(if: true) ").collect();
    for document in [
        format!("{{ ... {nine} {{ __typename }} }}"),
        format!("{{ ...F {nine} }} fragment F on Query {{ __typename }}"),
        format!("{{ ...F }} fragment F on Query {nine} {{ __typename }}"),
        format!("query Q {nine} {{ __typename }}"),
        format!("query Q($v: Int {nine}) {{ __typename }}"),
    ] {
        // One error from the limit, not one per directive from validation.
        let resp = query(&app, &document).await;
        assert_code(&resp, "GRAPHQL_VALIDATION_FAILED");
        assert_eq!(
            resp["errors"].as_array().unwrap().len(),
            1,
            "{document}: {resp}"
        );
        assert!(
            resp.to_string().contains("directives"),
            "{document}: {resp}"
        );
    }
    let resp = query(
        &app,
        "{ ... @include(if: true) @skip(if: false) { __typename } }",
    )
    .await;
    assert_eq!(resp["data"]["__typename"], "Query", "{resp}");
}

#[tokio::test]
async fn too_many_aliases_are_refused() {
    let app = spawn_app().await;
    let sixteen: String = (0..16).map(|i| format!("a{i}: __typename ")).collect();
    assert!(
        query(&app, &format!("{{ {sixteen} }}"))
            .await
            .get("errors")
            .is_none()
    );
    let seventeen: String = (0..17).map(|i| format!("a{i}: __typename ")).collect();
    assert_code(
        &query(&app, &format!("{{ {seventeen} }}")).await,
        "GRAPHQL_VALIDATION_FAILED",
    );
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let app = spawn_app_with(&[("HTTP_BODY_LIMIT_BYTES", "4096")]).await;
    let big = json!({ "query": "{ me { id } }", "variables": { "pad": "x".repeat(5000) } });
    assert_eq!(app.post_raw(&big, &[]).await.status(), 413);
    let small = json!({ "query": "{ me { id } }" });
    assert_eq!(app.post_raw(&small, &[]).await.status(), 200);
}

#[tokio::test]
async fn slow_requests_time_out() {
    // Hashing made slow on purpose (256 MiB, 8 passes: seconds) against a 1 s budget.
    let app = spawn_app_with(&[
        ("HTTP_REQUEST_TIMEOUT", "1"),
        ("ARGON2_MEMORY_KIB", "262144"),
        ("ARGON2_ITERATIONS", "8"),
    ])
    .await;
    let resp = app
        .post_raw(
            &json!({ "query": "mutation($i: LoginInput!) { login(input: $i) { tokenType } }",
                     "variables": { "i": { "email": "nobody@example.com", "password": PASSWORD } } }),
            &[],
        )
        .await;
    assert_eq!(resp.status(), 408);
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn production_hides_the_schema_unless_asked() {
    let app = spawn_app_with(&[("APP_ENV", "production")]).await;
    let introspection = query(&app, "{ __schema { types { name } } }").await;
    assert_eq!(
        introspection["data"]["__schema"],
        Value::Null,
        "{introspection}"
    );
    assert!(
        !introspection.to_string().contains("AuthPayload"),
        "{introspection}"
    );
    let typo = query(&app, "{ me { fulName } }").await;
    assert_code(&typo, "GRAPHQL_VALIDATION_FAILED");
    assert!(!typo.to_string().contains("Did you mean"), "{typo}");
    let page = app
        .http
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    let asset = app.get("/graphiql/4.1.2/graphiql.min.js").await;
    assert_eq!(asset.status(), 404);
    // The API itself works as in development.
    let email = unique_email();
    data(&app.register(&email).await, "register");

    let opened = app
        .sibling(&[
            ("APP_ENV", "production"),
            ("INTROSPECTION_ENABLED", "true"),
            ("GRAPHIQL_ENABLED", "true"),
        ])
        .await;
    let types = query(&opened, "{ __schema { types { name } } }").await;
    assert!(types.to_string().contains("AuthPayload"), "{types}");
    let page = opened
        .http
        .get(format!("{}/graphql", opened.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn development_keeps_introspection_and_suggestions() {
    let app = spawn_app().await;
    let types = query(&app, "{ __schema { types { name } } }").await;
    assert!(types.to_string().contains("AuthPayload"), "{types}");
    let typo = query(&app, "{ me { fulName } }").await;
    assert!(typo.to_string().contains("Did you mean"), "{typo}");
}

#[tokio::test]
async fn internal_errors_leak_nothing() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    app.sql("DROP TABLE refresh_tokens").await;
    let resp = app.login(&email, PASSWORD).await;
    assert_code(&resp, "INTERNAL_SERVER_ERROR");
    let text = resp.to_string().to_lowercase();
    for leak in [
        "refresh_tokens",
        "sql",
        "relation",
        "table",
        "src/",
        ".rs",
        "panicked",
        "backtrace",
    ] {
        assert!(!text.contains(leak), "{leak:?} in {resp}");
    }
    assert_eq!(resp["errors"][0]["message"], "Internal server error");
}

#[tokio::test]
async fn a_panic_becomes_an_internal_error_and_the_service_keeps_serving() {
    let app = spawn_app().await;
    let session = app.signed_up(&unique_email()).await;
    // A clock beyond chrono's range makes the next resolver that reads it panic.
    app.clock.set_offset_ms(i64::MAX);
    let resp = app
        .http
        .post(format!("{}/graphql", app.url))
        .bearer_auth(&session.access)
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_code(&body, "INTERNAL_SERVER_ERROR");
    assert!(!body.to_string().contains("overflow"), "{body}");
    app.clock.set_offset_ms(0);
    data(&app.me(Some(&session.access)).await, "me");
}

#[tokio::test]
async fn cors_allows_only_listed_origins_and_the_methods_in_use() {
    let app = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    let wants = "content-type,authorization";
    let ok = app.preflight("https://app.example", wants).await;
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let methods = ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        methods.contains("POST") && methods.contains("GET") && !methods.contains("PUT"),
        "{methods}"
    );
    // Cookie mode (wave 2): a listed origin may send the refresh cookie.
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let evil = app.preflight("https://evil.example", wants).await;
    assert!(evil.headers().get("access-control-allow-origin").is_none());

    let resp = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("origin", "https://evil.example")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn security_headers_and_no_version_banner() {
    let app = spawn_app().await;
    let api = app
        .post_raw(&json!({ "query": "{ __typename }" }), &[])
        .await;
    let h = api.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(h.get("server").is_none() && h.get("x-powered-by").is_none());

    // GraphiQL's page: scripts from this origin only, none inline, all of them served.
    let page = app
        .http
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    let sources: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .chain(html.split("href=\"").skip(1))
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(sources.len(), 6, "{sources:?}");
    for src in sources {
        assert!(src.starts_with('/'), "same-origin only: {src}");
        let asset = app
            .http
            .get(format!("{}{src}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{src}");
    }
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("<style"), "no inline style");
}

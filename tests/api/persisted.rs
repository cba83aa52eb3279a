//! Automatic persisted queries (Apollo's APQ): a hash alone runs a query the instance
//! has seen, an unknown hash asks for the query, a wrong hash is refused, a persisted
//! mutation is still refused over GET, and a persisted document still meets the limits.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

const ME: &str = "query Me { me { id email } }";

fn hash(query: &str) -> String {
    Sha256::digest(query.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn post(app: &TestApp, body: Value, access: Option<&str>) -> Value {
    let bearer = access.map(|a| format!("Bearer {a}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    app.post_raw(&body, &headers).await.json().await.unwrap()
}

async fn get(
    app: &TestApp,
    query: Option<&str>,
    extensions: &Value,
    access: &str,
) -> reqwest::Response {
    let mut params = vec![("extensions", extensions.to_string())];
    if let Some(query) = query {
        params.push(("query", query.to_owned()));
    }
    let url = url::Url::parse_with_params(&format!("{}/graphql", app.url), &params).unwrap();
    app.http.get(url).bearer_auth(access).send().await.unwrap()
}

#[tokio::test]
async fn a_hash_alone_runs_a_query_this_instance_has_seen() {
    let app = spawn_app().await;
    let session = app.signed_up(&unique_email()).await;
    let h = hash(ME);

    // Unknown: the client is asked for the query, in Apollo's words.
    let miss = post(
        &app,
        json!({ "extensions": persisted(&h) }),
        Some(&session.access),
    )
    .await;
    assert_eq!(
        miss["errors"][0]["message"], "PersistedQueryNotFound",
        "{miss}"
    );
    assert_code(&miss, "PERSISTED_QUERY_NOT_FOUND");
    assert!(
        miss.get("data").is_none_or(Value::is_null),
        "nothing ran: {miss}"
    );

    // The query with its hash is run and kept; then the hash alone is enough.
    let first = post(
        &app,
        json!({ "query": ME, "extensions": persisted(&h) }),
        Some(&session.access),
    )
    .await;
    assert_eq!(data(&first, "me")["id"], session.user_id.as_str());
    let hit = post(
        &app,
        json!({ "extensions": persisted(&h) }),
        Some(&session.access),
    )
    .await;
    assert_eq!(data(&hit, "me")["id"], session.user_id.as_str());
    // Over GET too, as Apollo Client sends hashed queries with `useGETForHashedQueries`.
    let over_get = get(&app, None, &persisted(&h), &session.access).await;
    assert_eq!(over_get.status(), 200);
    let over_get: Value = over_get.json().await.unwrap();
    assert_eq!(data(&over_get, "me")["id"], session.user_id.as_str());

    // Another instance has not seen it: it asks, as the protocol expects.
    let other = app.sibling(&[]).await;
    let miss = post(
        &other,
        json!({ "extensions": persisted(&h) }),
        Some(&session.access),
    )
    .await;
    assert_code(&miss, "PERSISTED_QUERY_NOT_FOUND");
}

#[tokio::test]
async fn a_hash_that_is_not_the_querys_is_refused() {
    let app = spawn_app().await;
    let session = app.signed_up(&unique_email()).await;
    let wrong = post(
        &app,
        json!({ "query": ME, "extensions": persisted(&hash("{ me { id } }")) }),
        Some(&session.access),
    )
    .await;
    assert_code(&wrong, "BAD_REQUEST");
    assert!(wrong.get("data").is_none_or(Value::is_null), "{wrong}");
    let version = post(
        &app,
        json!({ "query": ME, "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash(ME) } } }),
        Some(&session.access),
    )
    .await;
    assert_code(&version, "BAD_REQUEST");
    // Neither was kept.
    let miss = post(
        &app,
        json!({ "extensions": persisted(&hash(ME)) }),
        Some(&session.access),
    )
    .await;
    assert_code(&miss, "PERSISTED_QUERY_NOT_FOUND");
}

#[tokio::test]
async fn a_persisted_mutation_is_refused_over_get() {
    let app = spawn_app().await;
    let session = app.signed_up(&unique_email()).await;
    let mutation = "mutation Out($t: String) { logout(refreshToken: $t) }";
    let h = hash(mutation);
    let over_post = post(
        &app,
        json!({ "query": mutation, "variables": { "t": "not-a-token" }, "extensions": persisted(&h) }),
        Some(&session.access),
    )
    .await;
    assert!(over_post["data"].is_object(), "{over_post}");
    // The hash alone over GET stands for a mutation: refused before anything runs.
    let over_get = get(&app, None, &persisted(&h), &session.access).await;
    assert_eq!(over_get.status(), 405);
    assert_eq!(over_get.headers()["allow"], "POST");
    let body: Value = over_get.json().await.unwrap();
    assert_code(&body, "BAD_REQUEST");
    // The session it would have ended is alive.
    assert!(app.refresh(&session.refresh).await["data"]["refreshToken"].is_object());
}

#[tokio::test]
async fn a_persisted_document_meets_the_same_limits() {
    let app = spawn_app_with(&[("GRAPHQL_MAX_ALIASES", "2")]).await;
    let session = app.signed_up(&unique_email()).await;
    let aliased = "{ a: me { id } b: me { id } c: me { id } }";
    let h = hash(aliased);
    let registered = post(
        &app,
        json!({ "query": aliased, "extensions": persisted(&h) }),
        Some(&session.access),
    )
    .await;
    assert_code(&registered, "GRAPHQL_VALIDATION_FAILED");
    for _ in 0..2 {
        let again = post(
            &app,
            json!({ "extensions": persisted(&h) }),
            Some(&session.access),
        )
        .await;
        assert_code(&again, "GRAPHQL_VALIDATION_FAILED");
    }
    // And the parse cache does not let a refused document through either.
    let plain = post(&app, json!({ "query": aliased }), Some(&session.access)).await;
    assert_code(&plain, "GRAPHQL_VALIDATION_FAILED");
}

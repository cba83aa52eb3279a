//! `me`: who the access token belongs to, for a valid token of an active account.

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn me_needs_a_valid_access_token() {
    let app = spawn_app().await;
    let session = app.signed_up(&unique_email()).await;
    assert_code(&app.me(None).await, "UNAUTHENTICATED");
    assert_code(&app.me(Some("garbage")).await, "UNAUTHENTICATED");
    assert_code(
        &app.me(Some(&format!("{}x", session.access))).await,
        "UNAUTHENTICATED",
    );
    // A refresh token is never an access token.
    assert_code(&app.me(Some(&session.refresh)).await, "UNAUTHENTICATED");
    // Another scheme than Bearer is not read.
    let resp: Value = app
        .http
        .post(format!("{}/graphql", app.url))
        .header("authorization", format!("Basic {}", session.access))
        .json(&serde_json::json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_code(&resp, "UNAUTHENTICATED");
    data(&app.me(Some(&session.access)).await, "me");
}

#[tokio::test]
async fn a_deactivated_user_is_unauthenticated() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    app.deactivate(&email).await;
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
    assert_code(&app.refresh(&session.refresh).await, "INVALID_TOKEN");
}

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
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
async fn forged_tokens_are_rejected() {
    let app = spawn_app().await;
    let session = app.signed_up(&unique_email()).await;
    let claims = claims_of(&session.access);
    let kid = kid_of(&session.access);
    assert_eq!(claims["sub"], session.user_id.as_str());
    for claim in ["sub", "sid", "exp", "nbf", "iat", "jti", "iss", "aud"] {
        assert!(claims.get(claim).is_some(), "claim {claim} in {claims}");
    }

    // Control: the same claims signed the way the service signs are accepted.
    data(
        &app.me(Some(&sign_hs256(&claims, SECRET, &kid, "at+jwt")))
            .await,
        "me",
    );

    let other_key = sign_hs256(
        &claims,
        "another-secret-key-that-is-long-enough-xyz",
        &kid,
        "at+jwt",
    );
    assert_code(&app.me(Some(&other_key)).await, "UNAUTHENTICATED");

    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = "some-other-api".into();
    assert_code(
        &app.me(Some(&sign_hs256(&wrong_aud, SECRET, &kid, "at+jwt")))
            .await,
        "UNAUTHENTICATED",
    );

    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = "https://evil.example".into();
    assert_code(
        &app.me(Some(&sign_hs256(&wrong_iss, SECRET, &kid, "at+jwt")))
            .await,
        "UNAUTHENTICATED",
    );

    let plain_jwt = sign_hs256(&claims, SECRET, &kid, "JWT");
    assert_code(&app.me(Some(&plain_jwt)).await, "UNAUTHENTICATED");

    let unknown_kid = sign_hs256(&claims, SECRET, "not-our-key", "at+jwt");
    assert_code(&app.me(Some(&unknown_kid)).await, "UNAUTHENTICATED");

    let mut no_sid = claims.clone();
    no_sid.as_object_mut().unwrap().remove("sid");
    assert_code(
        &app.me(Some(&sign_hs256(&no_sid, SECRET, &kid, "at+jwt")))
            .await,
        "UNAUTHENTICATED",
    );

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let payload = session.access.split('.').nth(1).unwrap();
    assert_code(
        &app.me(Some(&format!("{none_header}.{payload}."))).await,
        "UNAUTHENTICATED",
    );
}

#[tokio::test]
async fn access_tokens_expire() {
    let app = spawn_app_with(&[("ACCESS_TOKEN_TTL", "60")]).await;
    let session = app.signed_up(&unique_email()).await;
    let claims = claims_of(&session.access);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    app.advance(55);
    data(&app.me(Some(&session.access)).await, "me");
    app.advance(15);
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
    // The refresh token still works and gives a fresh access token.
    let fresh = Session::from_payload(data(&app.refresh(&session.refresh).await, "refreshToken"));
    data(&app.me(Some(&fresh.access)).await, "me");
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

//! Access tokens: strict validation, expiry and leeway, and the keys that sign them
//! (rotation, the embedded default's generated key, EdDSA with a published JWK set).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;

use crate::support::*;

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
async fn the_leeway_is_a_few_seconds_not_a_minute() {
    let app = spawn_app_with(&[("ACCESS_TOKEN_TTL", "60")]).await;
    let session = app.signed_up(&unique_email()).await;
    app.advance(63);
    data(&app.me(Some(&session.access)).await, "me");
    app.advance(7);
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn every_claim_is_required_and_iat_may_not_lie_in_the_future() {
    let app = spawn_app().await;
    let session = app.signed_up(&unique_email()).await;
    let claims = claims_of(&session.access);
    let header = header_of(&session.access);
    let sign = |claims: &Value| {
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    data(&app.me(Some(&sign(&claims))).await, "me");
    for claim in ["exp", "nbf", "iat", "iss", "aud", "sub", "sid", "jti"] {
        let mut partial = claims.clone();
        partial.as_object_mut().unwrap().remove(claim);
        assert_code(&app.me(Some(&sign(&partial))).await, "UNAUTHENTICATED");
    }
    let mut future = claims.clone();
    future["iat"] = (claims["iat"].as_i64().unwrap() + 600).into();
    assert_code(&app.me(Some(&sign(&future))).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn keys_offered_by_the_token_itself_are_never_used() {
    let app = spawn_app().await;
    let session = app.signed_up(&unique_email()).await;
    let claims = claims_of(&session.access);
    let kid = header_of(&session.access).kid.unwrap();
    // The attacker signs with their own key and points at it with jku / x5u / jwk.
    let attacker = "attacker-controlled-secret-0123456789-abcdef";
    for (name, value) in [
        ("jku", serde_json::json!("https://evil.example/jwks.json")),
        ("x5u", serde_json::json!("https://evil.example/cert.pem")),
        (
            "jwk",
            serde_json::json!({ "kty": "oct", "k": URL_SAFE_NO_PAD.encode(attacker) }),
        ),
    ] {
        let mut header = serde_json::json!({ "alg": "HS256", "typ": "at+jwt", "kid": kid });
        header[name] = value;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(attacker.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        let token = format!("{signing_input}.{signature}");
        assert_code(&app.me(Some(&token)).await, "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn rotating_the_secret_signs_nobody_out() {
    let before = spawn_app_with(&[("SECRET_KEY", SECRET)]).await;
    let session = before.signed_up(&unique_email()).await;
    let after = before
        .sibling(&[("SECRET_KEY", NEXT_SECRET), ("SECRET_KEY_PREVIOUS", SECRET)])
        .await;
    data(&after.me(Some(&session.access)).await, "me");
    let renewed =
        Session::from_payload(data(&after.refresh(&session.refresh).await, "refreshToken"));
    assert_ne!(
        header_of(&renewed.access).kid,
        header_of(&session.access).kid,
        "new tokens use the new key"
    );
    data(&after.me(Some(&renewed.access)).await, "me");
    // Once the old key is dropped from the set, its tokens stop working.
    let later = before.sibling(&[("SECRET_KEY", NEXT_SECRET)]).await;
    assert_code(&later.me(Some(&session.access)).await, "UNAUTHENTICATED");
    data(&later.me(Some(&renewed.access)).await, "me");
}

#[tokio::test]
async fn the_embedded_default_keeps_its_generated_key_across_restarts() {
    let dir = tempdir();
    let vars = [("DATA_DIR", dir.as_str()), ("SECRET_KEY", "")];
    let storage = embedded_storage(&dir);
    let first = start(storage.clone(), MailSink::start(), &vars).await;
    let session = first.signed_up(&unique_email()).await;
    drop(first);
    let key = std::fs::read_to_string(format!("{dir}/secret.key")).unwrap();
    assert!(key.trim().len() >= 32);
    let second = start(storage, MailSink::start(), &vars).await;
    data(&second.me(Some(&session.access)).await, "me");
    data(&second.refresh(&session.refresh).await, "refreshToken");
}

#[tokio::test]
async fn eddsa_tokens_verify_with_the_published_jwks() {
    let key = ed25519_pem(11);
    let app = spawn_app_with(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_PRIVATE_KEY", &key)]).await;
    let session = app.signed_up(&unique_email()).await;
    let header = header_of(&session.access);
    assert_eq!(header.alg, Algorithm::EdDSA);
    data(&app.me(Some(&session.access)).await, "me");

    let resp = app
        .get_ok("/.well-known/jwks.json", "application/jwk-set+json")
        .await;
    let jwks: Value = resp.json().await.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header.kid.as_deref().unwrap())
        .expect("the token's kid is published");
    assert!(jwk.get("d").is_none(), "no private part");
    // Another service verifies with the JWK alone.
    let decoding = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["identity"]);
    validation.set_issuer(&["identity"]);
    let verified = jsonwebtoken::decode::<Value>(&session.access, &decoding, &validation).unwrap();
    assert_eq!(verified.claims["sub"], session.user_id.as_str());

    // Rotation: the new key signs, the old one still verifies and is still published.
    let rotated = app
        .sibling(&[
            ("JWT_ALGORITHM", "EdDSA"),
            ("JWT_PRIVATE_KEY", &ed25519_pem(12)),
            ("JWT_PREVIOUS_KEYS", &key),
        ])
        .await;
    data(&rotated.me(Some(&session.access)).await, "me");
    let jwks: Value = rotated
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    // An HS256 token made with the public key as the secret is refused.
    let mut forged_header = Header::new(Algorithm::HS256);
    forged_header.typ = Some("at+jwt".into());
    forged_header.kid = header.kid.clone();
    let forged = jsonwebtoken::encode(
        &forged_header,
        &claims_of(&session.access),
        &EncodingKey::from_secret(jwk["x"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    assert_code(&rotated.me(Some(&forged)).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn hmac_deployments_publish_no_keys() {
    let app = spawn_app().await;
    let resp = app.get("/.well-known/jwks.json").await;
    assert_eq!(resp.status(), 404);
}

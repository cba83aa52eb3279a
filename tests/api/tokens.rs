//! Sessions and access tokens: immediate revocation, idle expiry, strict validation,
//! key rotation, EdDSA with a published JWK set.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;

use crate::support::*;

const NEXT_SECRET: &str = "Xq3v9LmZt2R8bW1kP6sN0yH4jD7fG5cAx8Vb2Nm4";

fn redis_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli on PATH");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn revocation_is_read_from_the_revocation_set_and_expires_with_the_tokens() {
    let app = spawn_app_with(&[("ACCESS_TOKEN_TTL", "300")]).await;
    let session = app.signed_up(&unique_email()).await;
    data(&app.logout(&session.refresh).await, "logout");
    // Undo the revocation in the database: the access token is still refused, because
    // `me` asks the revocation set, not the sessions table.
    app.sql("UPDATE sessions SET revoked_at = NULL, revoked_reason = NULL")
        .await;
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
    if backend() == Backend::Postgres {
        let prefix = &app.storage.vars["REDIS_KEY_PREFIX"];
        let sid = claims_of(&session.access)["sid"]
            .as_str()
            .unwrap()
            .to_owned();
        let ttl: i64 = redis_cli(&["PTTL", &format!("{prefix}revoked:sid:{sid}")])
            .parse()
            .unwrap();
        // Kept as long as an access token can live (TTL + leeway), no longer.
        assert!(ttl > 0 && ttl <= 305_000, "PTTL {ttl}");
    }
    // Once every access token of the session has expired anyway, the entry is not needed.
    app.advance(306);
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_deactivated_account_loses_its_sessions_at_once() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_identity"));
    cmd.arg("deactivate-user")
        .arg(email.to_uppercase())
        .env_clear();
    for (k, v) in &app.storage.vars {
        cmd.env(k, v);
    }
    cmd.env("SECRET_KEY", SECRET).env("RUN_MIGRATIONS", "false");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
    assert_code(&app.refresh(&session.refresh).await, "INVALID_TOKEN");
    assert_code(&app.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");
    let revoked = app.sql_string("SELECT revoked_reason FROM sessions").await;
    assert_eq!(revoked, ["deactivated"]);
}

#[tokio::test]
async fn sessions_end_when_left_idle() {
    let app = spawn_app_with(&[("REFRESH_IDLE_TTL", "60"), ("REFRESH_TOKEN_TTL", "3600")]).await;
    let mut session = app.signed_up(&unique_email()).await;
    for _ in 0..3 {
        app.advance(50);
        session = Session::from_payload(data(&app.refresh(&session.refresh).await, "refreshToken"));
    }
    app.advance(61);
    assert_code(&app.refresh(&session.refresh).await, "INVALID_TOKEN");
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
async fn eddsa_tokens_verify_with_the_published_jwks() {
    let key = ed25519_pem(11);
    let app = spawn_app_with(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_PRIVATE_KEY", &key)]).await;
    let session = app.signed_up(&unique_email()).await;
    let header = header_of(&session.access);
    assert_eq!(header.alg, Algorithm::EdDSA);
    data(&app.me(Some(&session.access)).await, "me");

    let resp = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json")
    );
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
        .http
        .get(format!("{}/.well-known/jwks.json", rotated.url))
        .send()
        .await
        .unwrap()
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
    let resp = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn reuse_detection_mails_the_user() {
    let app = spawn_app().await;
    let email = unique_email();
    let first = app.signed_up(&email).await;
    data(&app.refresh(&first.refresh).await, "refreshToken");
    app.advance(11);
    assert_code(&app.refresh(&first.refresh).await, "INVALID_TOKEN");
    let mail = app.mail.wait_for(&email, 1).await.remove(0);
    assert!(
        mail.subject().contains("signed out for your safety"),
        "{}",
        mail.subject()
    );
    assert!(!mail.text().contains(&first.refresh));
}

/// Whether the instance answers from memory (it has heard every revocation).
async fn trusts_its_memory(app: &TestApp) -> Option<()> {
    let text = app.metrics().await;
    text.lines()
        .any(|l| l == "identity_local_state_trusted 1")
        .then_some(())
}

async fn wait_trusting(app: &TestApp) {
    eventually(
        std::time::Duration::from_secs(5),
        "the instance trusts its memory",
        || trusts_its_memory(app),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn a_revocation_on_one_instance_holds_on_another_at_once() {
    // Instances share revocations through Redis; the embedded default is one instance.
    require_postgres();
    let a = spawn_app().await;
    let b = a.sibling(&[]).await;
    let email = unique_email();
    let session = a.signed_up(&email).await;
    wait_trusting(&b).await;
    // B answers from memory now: it has the profile and knows of no revocation.
    data(&b.me(Some(&session.access)).await, "me");
    data(&b.me(Some(&session.access)).await, "me");
    data(&a.logout(&session.refresh).await, "logout");
    assert_code(&b.me(Some(&session.access)).await, "UNAUTHENTICATED");

    // A login on A moves lastLogin; B's copy of the profile is dropped at once.
    let other = Session::from_payload(data(&a.login(&email, PASSWORD).await, "login"));
    let seen_by_b = data(&b.me(Some(&other.access)).await, "me")["lastLogin"].clone();
    let seen_by_a = data(&a.me(Some(&other.access)).await, "me")["lastLogin"].clone();
    assert!(seen_by_b.is_string());
    assert_eq!(seen_by_b, seen_by_a);
}

//! Sessions carry their assurance (`acr`, `amr`, `auth_time` in access tokens), refresh
//! keeps it, and `reauthenticate` proves a credential again on the same session.

use serde_json::{Value, json};

use crate::support::*;

const REAUTHENTICATE: &str = "mutation($i: ReauthenticateInput!) { \
     reauthenticate(input: $i) { accessToken expiresIn authTime acr } }";

async fn reauthenticate(app: &TestApp, access: Option<&str>, input: Value) -> Value {
    app.graphql_as(REAUTHENTICATE, json!({ "i": input }), access)
        .await
}

#[tokio::test]
async fn access_tokens_carry_the_sessions_assurance_and_refresh_keeps_it() {
    let app = spawn_app().await;
    app.freeze_clock();
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let claims = claims_of(&session.access);
    assert_eq!(claims["acr"], "aal1", "{claims}");
    assert_eq!(claims["amr"], json!(["pwd"]), "{claims}");
    assert_eq!(claims["auth_time"], claims["iat"], "{claims}");

    // A refresh later is a new token of the same proof: auth_time stays.
    app.advance(120);
    let refreshed = data(&app.refresh(&session.refresh).await, "refreshToken").clone();
    let later = claims_of(refreshed["accessToken"].as_str().unwrap());
    assert_eq!(later["auth_time"], claims["auth_time"], "{later}");
    assert_eq!(later["acr"], "aal1");
    assert_eq!(later["amr"], json!(["pwd"]));
    assert!(later["iat"].as_i64() > claims["iat"].as_i64(), "{later}");

    // A login is a new proof.
    let login = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    let fresh = claims_of(&login.access);
    assert_eq!(fresh["auth_time"], fresh["iat"]);
    assert!(fresh["auth_time"].as_i64() > claims["auth_time"].as_i64());
}

#[tokio::test]
async fn reauthenticate_proves_the_password_again_on_the_same_session() {
    let app = spawn_app().await;
    app.freeze_clock();
    let session = app.signed_up(&unique_email()).await;
    let before = claims_of(&session.access);
    app.advance(600);

    let body = reauthenticate(&app, Some(&session.access), json!({ "password": PASSWORD })).await;
    let payload = data(&body, "reauthenticate");
    assert_eq!(payload["acr"], "aal1", "{body}");
    assert_eq!(payload["expiresIn"], 900, "{body}");
    let after = claims_of(payload["accessToken"].as_str().unwrap());
    assert_eq!(after["sid"], before["sid"], "the same session");
    assert_eq!(after["amr"], json!(["pwd"]));
    assert_eq!(
        after["auth_time"].as_i64().unwrap(),
        before["auth_time"].as_i64().unwrap() + 600,
        "{after}"
    );
    let auth_time = chrono::DateTime::parse_from_rfc3339(payload["authTime"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(auth_time, after["auth_time"].as_i64().unwrap());
    data(
        &app.me(Some(payload["accessToken"].as_str().unwrap())).await,
        "me",
    );

    // Stored on the session: the next refresh carries the new auth_time.
    app.advance(60);
    let refreshed = data(&app.refresh(&session.refresh).await, "refreshToken").clone();
    let later = claims_of(refreshed["accessToken"].as_str().unwrap());
    assert_eq!(later["auth_time"], after["auth_time"], "{later}");
    assert!(
        app.audit_events()
            .await
            .iter()
            .any(|(event, ..)| event == "reauthenticated")
    );
}

#[tokio::test]
async fn a_wrong_password_to_reauthenticate_counts_against_the_login_back_off() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "3")]).await;
    app.freeze_clock();
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let mut refused = None;
    for attempt in 1..=10 {
        let body = reauthenticate(
            &app,
            Some(&session.access),
            json!({ "password": "not the password" }),
        )
        .await;
        match code(&body) {
            "INVALID_CREDENTIALS" => {}
            "RATE_LIMITED" => {
                refused = Some(attempt);
                break;
            }
            other => panic!("attempt {attempt}: {other}: {body}"),
        }
    }
    let refused = refused.expect("wrong passwords are refused before long");
    assert!(refused > 1, "the first attempts are checked: {refused}");
    // The same budget as login: the account cools down for this client.
    assert_code(&app.login(&email, PASSWORD).await, "RATE_LIMITED");
    assert_code(
        &reauthenticate(&app, Some(&session.access), json!({ "password": PASSWORD })).await,
        "RATE_LIMITED",
    );
}

#[tokio::test]
async fn reauthenticate_needs_one_credential_and_a_live_session() {
    let app = spawn_app().await;
    let session = app.signed_up(&unique_email()).await;
    let access = Some(session.access.as_str());

    assert_code(
        &reauthenticate(&app, access, json!({})).await,
        "BAD_USER_INPUT",
    );
    assert_code(
        &reauthenticate(
            &app,
            access,
            json!({ "password": PASSWORD, "totpCode": "123456" }),
        )
        .await,
        "BAD_USER_INPUT",
    );
    assert_code(
        &reauthenticate(&app, None, json!({ "password": PASSWORD })).await,
        "UNAUTHENTICATED",
    );
    // No second factor on this account: no code is right, and there is no ceremony.
    assert_code(
        &reauthenticate(&app, access, json!({ "totpCode": "123456" })).await,
        "INVALID_CREDENTIALS",
    );
    assert_code(
        &reauthenticate(
            &app,
            access,
            json!({ "passkey": { "ceremonyId": "nope", "credential": {} } }),
        )
        .await,
        "INVALID_TOKEN",
    );
    // A signed-out session cannot be proved again.
    data(&app.logout(&session.refresh).await, "logout");
    assert_code(
        &reauthenticate(&app, access, json!({ "password": PASSWORD })).await,
        "UNAUTHENTICATED",
    );
}

//! `register`: a session and a normalised user, each invalid field named, emails taken
//! once.

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn register_returns_a_session_and_a_normalised_user() {
    let app = spawn_app().await;
    let resp = app
        .register_as(
            "  Ada.Lovelace@Example.COM ",
            "  Ada Lovelace ",
            PASSWORD,
            PASSWORD,
        )
        .await;
    let payload = data(&resp, "register");
    assert_eq!(payload["tokenType"], "Bearer");
    assert_eq!(payload["expiresIn"], 900);
    let user = &payload["user"];
    assert_eq!(user["email"], "ada.lovelace@example.com");
    assert_eq!(user["fullName"], "Ada Lovelace");
    assert_eq!(user["isActive"], true);
    assert_eq!(user["lastLogin"], Value::Null);
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    let joined =
        chrono::DateTime::parse_from_rfc3339(user["dateJoined"].as_str().unwrap()).unwrap();
    assert!(
        (identity::clock::wall_now() - joined.to_utc())
            .num_seconds()
            .abs()
            < 60
    );

    let session = Session::from_payload(payload);
    let me = app.me(Some(&session.access)).await;
    assert_eq!(data(&me, "me")["email"], "ada.lovelace@example.com");
    assert_eq!(data(&me, "me")["id"], user["id"]);
}

#[tokio::test]
async fn each_invalid_field_is_named() {
    let app = spawn_app().await;
    let resp = app.register_as("not-an-email", "   ", "123", "456").await;
    let f = fields(&resp);
    assert!(f.contains_key("email"), "{resp}");
    assert!(f.contains_key("fullName"), "{resp}");
    assert!(f.contains_key("password"), "{resp}");
    assert!(f.contains_key("passwordConfirm"), "{resp}");
    // Nothing was created.
    assert_code(&app.login("not-an-email", "123").await, "BAD_USER_INPUT");
}

#[tokio::test]
async fn confirmation_must_match() {
    let app = spawn_app().await;
    let resp = app
        .register_as(
            &unique_email(),
            "Ada Lovelace",
            PASSWORD,
            "correct horse batteries",
        )
        .await;
    let f = fields(&resp);
    assert_eq!(f.keys().collect::<Vec<_>>(), ["passwordConfirm"]);
}

#[tokio::test]
async fn full_name_is_bounded() {
    let app = spawn_app().await;
    let resp = app
        .register_as(&unique_email(), &"n".repeat(151), PASSWORD, PASSWORD)
        .await;
    assert!(fields(&resp).contains_key("fullName"));
    let resp = app
        .register_as(&unique_email(), &"n".repeat(150), PASSWORD, PASSWORD)
        .await;
    data(&resp, "register");
}

#[tokio::test]
async fn a_taken_email_is_a_field_error_however_it_is_typed() {
    let app = spawn_app().await;
    app.signed_up("taken@example.com").await;
    let resp = app
        .register_as(" TAKEN@example.com", "Someone Else", PASSWORD, PASSWORD)
        .await;
    let f = fields(&resp);
    assert!(f["email"].to_string().contains("already exists"), "{resp}");
    // The first account is untouched.
    data(&app.login("taken@example.com", PASSWORD).await, "login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_registrations_of_one_email_one_wins() {
    let app = spawn_app().await;
    let email = unique_email();
    let (a, b) = tokio::join!(app.register(&email), app.register(&email));
    let outcomes = [&a, &b].map(|r| r.get("errors").is_none());
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{a}\n{b}");
    let loser = if outcomes[0] { &b } else { &a };
    assert!(fields(loser).contains_key("email"), "{loser}");
}

#[tokio::test]
async fn passwords_and_refresh_tokens_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let hashes = app
        .sql_string(&format!(
            "SELECT password_hash FROM users WHERE email = '{email}'"
        ))
        .await;
    assert_eq!(hashes.len(), 1);
    assert!(
        hashes[0].starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        hashes[0]
    );
    assert!(!hashes[0].contains(PASSWORD));
    let stored = app
        .sql_string("SELECT token_hash FROM refresh_tokens")
        .await;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], session.refresh);
    assert!(!stored.iter().any(|h| h.contains(&session.refresh)));
}

//! `login`: a new session, one answer for every failure, hashes upgraded on the way.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn login_starts_a_new_session() {
    let app = spawn_app().await;
    let email = unique_email();
    let first = app.signed_up(&email).await;
    let resp = app
        .login(&format!("  {} ", email.to_uppercase()), PASSWORD)
        .await;
    let payload = data(&resp, "login");
    assert_eq!(payload["user"]["email"], email.as_str());
    assert!(
        payload["user"]["lastLogin"].is_string(),
        "lastLogin is set: {resp}"
    );
    let second = Session::from_payload(payload);
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(
        data(&app.me(Some(&second.access)).await, "me")["email"],
        email.as_str()
    );
    // The first session is still alive.
    data(&app.refresh(&first.refresh).await, "refreshToken");
}

#[tokio::test]
async fn a_login_moves_last_login_on_the_profile_kept_in_memory_without_a_read() {
    // Under a login flood, each login used to drop the user's profile, and the next `me`
    // waited for a database connection behind the logins' writes.
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let reads = || async {
        sample(
            &app.metrics().await,
            "identity_profile_database_reads_total",
        )
    };
    data(&app.me(Some(&session.access)).await, "me");
    let kept = reads().await;
    assert!(kept >= 1.0, "the first `me` reads the profile");
    app.advance(5);
    let login = app.login(&email, PASSWORD).await;
    let login = data(&login, "login");
    let me = app.me(Some(&session.access)).await;
    let me = data(&me, "me");
    assert!(me["lastLogin"].is_string());
    assert_eq!(me["lastLogin"], login["user"]["lastLogin"]);
    assert_eq!(me["fullName"], login["user"]["fullName"]);
    assert_eq!(reads().await, kept, "answered from memory");

    // Any other change still drops the copy: the next `me` reads it again.
    let token = app
        .mail
        .wait_for_verifications(&email, 1)
        .await
        .remove(0)
        .verify_token();
    let verify = "mutation($t: String!) { verifyEmail(token: $t) }";
    data(
        &app.graphql(verify, json!({ "t": token })).await,
        "verifyEmail",
    );
    let me = app
        .graphql_as(
            "{ me { emailVerified lastLogin } }",
            json!({}),
            Some(&session.access),
        )
        .await;
    assert_eq!(data(&me, "me")["emailVerified"], true);
    assert_eq!(data(&me, "me")["lastLogin"], login["user"]["lastLogin"]);
    assert_eq!(reads().await, kept + 1.0);
}

#[tokio::test]
async fn wrong_password_unknown_email_and_inactive_account_look_the_same() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let wrong = app.login(&email, "not the password").await;
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    assert_code(&wrong, "INVALID_CREDENTIALS");
    assert_code(&unknown, "INVALID_CREDENTIALS");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );

    app.deactivate(&email).await;
    let inactive = app.login(&email, PASSWORD).await;
    assert_code(&inactive, "INVALID_CREDENTIALS");
    assert_eq!(
        inactive["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
}

#[tokio::test]
async fn an_unknown_email_costs_one_argon2_verify_like_a_known_one() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let verifies = |text: &str| {
        sample(
            text,
            "identity_password_hash_duration_seconds_count{op=\"verify\"}",
        )
    };
    let before = verifies(&app.metrics().await);
    assert_code(
        &app.login("nobody@example.com", PASSWORD).await,
        "INVALID_CREDENTIALS",
    );
    let after_unknown = verifies(&app.metrics().await);
    assert_code(
        &app.login(&email, "wrong password").await,
        "INVALID_CREDENTIALS",
    );
    let after_known = verifies(&app.metrics().await);
    assert_eq!(after_unknown - before, 1.0);
    assert_eq!(after_known - after_unknown, 1.0);
}

#[tokio::test]
async fn malformed_input_is_bad_user_input() {
    let app = spawn_app().await;
    assert!(fields(&app.login("not-an-email", PASSWORD).await).contains_key("email"));
    assert!(fields(&app.login("ada@example.com", "").await).contains_key("password"));
}

#[tokio::test]
async fn a_hash_with_older_parameters_is_upgraded_on_login() {
    let old = spawn_app_with(&[("ARGON2_MEMORY_KIB", "8192"), ("ARGON2_ITERATIONS", "1")]).await;
    let email = unique_email();
    old.signed_up(&email).await;
    let query = format!("SELECT password_hash FROM users WHERE email = '{email}'");
    assert!(old.sql_string(&query).await[0].contains("m=8192,t=1,p=1"));

    let current = old.sibling(&[]).await;
    data(&current.login(&email, PASSWORD).await, "login");
    let upgraded = current.sql_string(&query).await.remove(0);
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{upgraded}"
    );
    // The new hash still verifies the same password.
    data(&current.login(&email, PASSWORD).await, "login");
    assert_code(
        &current.login(&email, "wrong password").await,
        "INVALID_CREDENTIALS",
    );
}

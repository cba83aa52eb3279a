//! `changePassword`: the current password proved (and counted like a login), the new
//! one held to the policy, the calling session replaced, the others signed out unless
//! kept, the open reset link cancelled, and the owner told.

use serde_json::{Value, json};

use crate::support::*;

const CHANGE_PASSWORD: &str = "mutation($i: ChangePasswordInput!) { \
     changePassword(input: $i) { accessToken refreshToken expiresIn user { id email } } }";

async fn change_password(app: &TestApp, access: Option<&str>, input: Value) -> Value {
    app.graphql_as(CHANGE_PASSWORD, json!({ "i": input }), access)
        .await
}

fn input(current: &str, new: &str, confirm: &str) -> Value {
    json!({ "currentPassword": current, "newPassword": new, "newPasswordConfirm": confirm })
}

#[tokio::test]
async fn changing_the_password_replaces_the_session_and_signs_out_the_others() {
    let app = spawn_app().await;
    let email = unique_email();
    let caller = app.signed_up(&email).await;
    let other = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    let reset_token = app.reset_token_for(&email).await;

    let body = change_password(
        &app,
        Some(&caller.access),
        input(PASSWORD, NEW_PASSWORD, NEW_PASSWORD),
    )
    .await;
    let payload = data(&body, "changePassword");
    assert_eq!(payload["user"]["email"], email.as_str(), "{body}");
    assert_eq!(payload["expiresIn"], 900, "{body}");
    let fresh = Session::from_payload(payload);
    let claims = claims_of(&fresh.access);
    assert_ne!(
        claims["sid"],
        claims_of(&caller.access)["sid"],
        "a new session"
    );
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_ne!(fresh.refresh, caller.refresh);

    // The new session works; the calling one and the other one are over, at once.
    data(&app.me(Some(&fresh.access)).await, "me");
    for access in [&caller.access, &other.access] {
        assert_code(&app.me(Some(access)).await, "UNAUTHENTICATED");
    }
    for refresh in [&caller.refresh, &other.refresh] {
        assert_code(&app.refresh(refresh).await, "INVALID_TOKEN");
    }
    data(&app.refresh(&fresh.refresh).await, "refreshToken");

    assert_code(&app.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");
    data(&app.login(&email, NEW_PASSWORD).await, "login");
    // The reset link mailed before the change no longer works.
    assert_code(
        &app.reset_password(
            &reset_token,
            "another fine password 7",
            "another fine password 7",
        )
        .await,
        "INVALID_TOKEN",
    );

    let mails = app.mail.wait_for(&email, 2).await;
    let notice = mails
        .iter()
        .find(|m| m.subject().contains("password was changed"))
        .expect("the notice");
    assert!(notice.text().contains("Every other session was signed out"));
    assert!(!notice.text().contains(NEW_PASSWORD));
    assert!(
        app.audit_events()
            .await
            .iter()
            .any(|(event, ..)| event == "password_changed")
    );
}

#[tokio::test]
async fn other_sessions_can_be_kept() {
    let app = spawn_app().await;
    let email = unique_email();
    let caller = app.signed_up(&email).await;
    let other = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));

    let mut keep = input(PASSWORD, NEW_PASSWORD, NEW_PASSWORD);
    keep["signOutOtherSessions"] = json!(false);
    let body = change_password(&app, Some(&caller.access), keep).await;
    let fresh = Session::from_payload(data(&body, "changePassword"));

    data(&app.me(Some(&fresh.access)).await, "me");
    data(&app.me(Some(&other.access)).await, "me");
    data(&app.refresh(&other.refresh).await, "refreshToken");
    // The calling session is replaced all the same.
    assert_code(&app.me(Some(&caller.access)).await, "UNAUTHENTICATED");
    assert_code(&app.refresh(&caller.refresh).await, "INVALID_TOKEN");

    let notice = app.mail.wait_for(&email, 1).await.remove(0);
    assert!(notice.subject().contains("password was changed"));
    assert!(notice.text().contains("Your other sessions stay signed in"));
}

#[tokio::test]
async fn a_wrong_current_password_counts_against_the_login_back_off() {
    let app = spawn_app_with(&[("RATE_LIMIT_LOGIN_FAILURES", "3")]).await;
    app.freeze_clock();
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let wrong = input("not the password", NEW_PASSWORD, NEW_PASSWORD);
    assert_code(
        &change_password(&app, Some(&session.access), wrong.clone()).await,
        "INVALID_CREDENTIALS",
    );
    let mut refused = None;
    for attempt in 2..=10 {
        let body = change_password(&app, Some(&session.access), wrong.clone()).await;
        match code(&body) {
            "INVALID_CREDENTIALS" => {}
            "RATE_LIMITED" => {
                refused = Some(attempt);
                break;
            }
            other => panic!("attempt {attempt}: {other}: {body}"),
        }
    }
    refused.expect("wrong passwords are refused before long");
    // The same budget as login: the account cools down for this client.
    assert_code(&app.login(&email, PASSWORD).await, "RATE_LIMITED");
    assert_code(
        &change_password(
            &app,
            Some(&session.access),
            input(PASSWORD, NEW_PASSWORD, NEW_PASSWORD),
        )
        .await,
        "RATE_LIMITED",
    );
    // Nothing changed, and the session lives on.
    data(&app.me(Some(&session.access)).await, "me");
    assert!(app.mail.to(&email).is_empty());
}

#[tokio::test]
async fn the_new_password_is_held_to_the_policy() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let access = Some(session.access.as_str());

    let weak = change_password(&app, access, input(PASSWORD, "password1", "password1")).await;
    assert_code(&weak, "BAD_USER_INPUT");
    assert!(
        fields(&weak)["newPassword"].to_string().contains("common"),
        "{weak}"
    );
    let mismatch = change_password(
        &app,
        access,
        input(PASSWORD, NEW_PASSWORD, "something else entirely"),
    )
    .await;
    assert_code(&mismatch, "BAD_USER_INPUT");
    assert!(
        fields(&mismatch).contains_key("newPasswordConfirm"),
        "{mismatch}"
    );
    let same = change_password(&app, access, input(PASSWORD, PASSWORD, PASSWORD)).await;
    assert_code(&same, "BAD_USER_INPUT");
    assert!(
        fields(&same)["newPassword"].to_string().contains("differ"),
        "{same}"
    );
    let empty = change_password(&app, access, input("", NEW_PASSWORD, NEW_PASSWORD)).await;
    assert!(fields(&empty).contains_key("currentPassword"), "{empty}");
    assert_code(
        &change_password(&app, None, input(PASSWORD, NEW_PASSWORD, NEW_PASSWORD)).await,
        "UNAUTHENTICATED",
    );

    // None of these changed anything.
    data(&app.me(access).await, "me");
    data(&app.login(&email, PASSWORD).await, "login");
    data(&app.refresh(&session.refresh).await, "refreshToken");
}

#[tokio::test]
async fn a_signed_out_session_cannot_change_the_password() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    data(&app.logout(&session.refresh).await, "logout");
    assert_code(
        &change_password(
            &app,
            Some(&session.access),
            input(PASSWORD, NEW_PASSWORD, NEW_PASSWORD),
        )
        .await,
        "UNAUTHENTICATED",
    );
    data(&app.login(&email, PASSWORD).await, "login");
}

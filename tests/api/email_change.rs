//! Change of email: requested from a fresh session, confirmed with a link mailed to the
//! new address; the old address works until then and is told; a taken address is
//! answered like a free one and mailed nothing; confirming ends the other sessions.

use serde_json::{Value, json};

use crate::support::*;

const REQUEST: &str = "mutation($e: String!) { requestEmailChange(newEmail: $e) }";
const CONFIRM: &str = "mutation($t: String!) { confirmEmailChange(token: $t) }";

async fn request_change(app: &TestApp, access: &str, new_email: &str) -> Value {
    app.graphql_as(REQUEST, json!({ "e": new_email }), Some(access))
        .await
}

async fn confirm_change(app: &TestApp, access: Option<&str>, token: &str) -> Value {
    app.graphql_as(CONFIRM, json!({ "t": token }), access).await
}

fn is_confirm_link(mail: &ReceivedMail) -> bool {
    mail.subject().starts_with("Confirm your new email address")
}

/// The token of the confirm link mailed to `email` (waits for it).
async fn confirm_token(app: &TestApp, email: &str) -> String {
    eventually(
        std::time::Duration::from_secs(10),
        &format!("a confirm link to {email}"),
        || async {
            app.mail
                .to(email)
                .iter()
                .rev()
                .find(|m| is_confirm_link(m))
                .map(|m| m.link_token(EMAIL_CHANGE_URL))
        },
    )
    .await
}

/// The notices to `email` whose subject contains `subject`.
fn notices(app: &TestApp, email: &str, subject: &str) -> Vec<ReceivedMail> {
    app.mail
        .to(email)
        .into_iter()
        .filter(|m| m.subject().contains(subject))
        .collect()
}

#[tokio::test]
async fn the_old_address_works_until_the_new_one_is_confirmed() {
    let app = spawn_app().await;
    let old = unique_email();
    let new = unique_email();
    let caller = app.signed_up(&old).await;
    let other = Session::from_payload(data(&app.login(&old, PASSWORD).await, "login"));

    let body = request_change(&app, &caller.access, &new.to_uppercase()).await;
    assert_eq!(data(&body, "requestEmailChange"), true, "{body}");
    let token = confirm_token(&app, &new).await;
    // Until the link is used, nothing changes: the old address signs in, the new one
    // does not, and the old address has been told of the request.
    data(&app.login(&old, PASSWORD).await, "login");
    assert_code(&app.login(&new, PASSWORD).await, "INVALID_CREDENTIALS");
    let me = app.me(Some(&caller.access)).await;
    assert_eq!(data(&me, "me")["email"], old.as_str());
    let requested = app.mail.wait_for(&old, 1).await;
    assert!(
        requested[0].subject().contains("change of your"),
        "{}",
        requested[0].subject()
    );
    assert!(
        requested[0].text().contains(&new),
        "the notice names the new address"
    );
    assert!(
        !requested[0].text().contains(&token),
        "the old address never sees the link"
    );

    let body = confirm_change(&app, Some(&caller.access), &token).await;
    assert_eq!(data(&body, "confirmEmailChange"), true, "{body}");

    // The new address signs in; the old one no longer does.
    assert_code(&app.login(&old, PASSWORD).await, "INVALID_CREDENTIALS");
    data(&app.login(&new, PASSWORD).await, "login");
    let me = app
        .graphql_as(
            "{ me { email emailVerified } }",
            json!({}),
            Some(&caller.access),
        )
        .await;
    assert_eq!(data(&me, "me")["email"], new.as_str(), "{me}");
    assert_eq!(data(&me, "me")["emailVerified"], true, "{me}");
    // The other session is over at once, access and refresh tokens alike; the
    // confirming one goes on.
    assert_code(&app.me(Some(&other.access)).await, "UNAUTHENTICATED");
    assert_code(&app.refresh(&other.refresh).await, "INVALID_TOKEN");
    data(&app.refresh(&caller.refresh).await, "refreshToken");
    // Both addresses are told; the link works once.
    for address in [&old, &new] {
        eventually(
            std::time::Duration::from_secs(10),
            &format!("the change notice to {address}"),
            || async {
                let told = notices(&app, address, "email address was changed");
                if told.len() == 1 {
                    Ok(told)
                } else {
                    Err(format!("{} notices", told.len()))
                }
            },
        )
        .await;
    }
    assert_code(
        &confirm_change(&app, Some(&caller.access), &token).await,
        "INVALID_TOKEN",
    );
    let events: Vec<String> = app.audit_events().await.into_iter().map(|e| e.0).collect();
    for event in ["email_change_requested", "email_changed"] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
}

#[tokio::test]
async fn a_taken_address_is_answered_true_and_mailed_nothing() {
    let app = spawn_app().await;
    let owner = unique_email();
    let taken = unique_email();
    let caller = app.signed_up(&owner).await;
    app.signed_up(&taken).await;

    let body = request_change(&app, &caller.access, &taken).await;
    assert_eq!(data(&body, "requestEmailChange"), true, "{body}");
    // The owner gets the same notice as for a free address…
    let notice = app.mail.wait_for(&owner, 1).await;
    assert!(notice[0].text().contains(&taken));
    // …and the taken address gets nothing (its registration's verification mail aside).
    app.settle().await;
    assert!(app.mail.to(&taken).is_empty(), "{:?}", app.mail.to(&taken));
    data(&app.login(&taken, PASSWORD).await, "login");
}

#[tokio::test]
async fn confirming_without_a_session_signs_out_every_session() {
    let app = spawn_app().await;
    let old = unique_email();
    let new = unique_email();
    let caller = app.signed_up(&old).await;
    assert_eq!(
        data(
            &request_change(&app, &caller.access, &new).await,
            "requestEmailChange"
        ),
        true
    );
    let token = confirm_token(&app, &new).await;
    // Opened in another browser: no access token, or one of another account.
    let stranger = app.signed_up(&unique_email()).await;
    let body = confirm_change(&app, Some(&stranger.access), &token).await;
    assert_eq!(data(&body, "confirmEmailChange"), true, "{body}");
    assert_code(&app.me(Some(&caller.access)).await, "UNAUTHENTICATED");
    assert_code(&app.refresh(&caller.refresh).await, "INVALID_TOKEN");
    data(&app.me(Some(&stranger.access)).await, "me");
}

#[tokio::test]
async fn a_stale_session_must_reauthenticate_first() {
    let app = spawn_app().await;
    app.freeze_clock();
    let caller = app.signed_up(&unique_email()).await;
    let new = unique_email();
    app.advance(301);
    let body = request_change(&app, &caller.access, &new).await;
    assert_code(&body, "REAUTHENTICATION_REQUIRED");
    assert_eq!(
        body["errors"][0]["extensions"]["maxAgeSeconds"], 300,
        "{body}"
    );
    let reauth = app
        .graphql_as(
            "mutation { reauthenticate(input: { password: \"correct horse battery\" }) { accessToken } }",
            json!({}),
            Some(&caller.access),
        )
        .await;
    let access = data(&reauth, "reauthenticate")["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = request_change(&app, &access, &new).await;
    assert_eq!(data(&body, "requestEmailChange"), true, "{body}");
    // A setting moves the limit.
    let strict = spawn_app_with(&[("REAUTH_MAX_AGE", "60")]).await;
    strict.freeze_clock();
    let caller = strict.signed_up(&unique_email()).await;
    strict.advance(59);
    let body = request_change(&strict, &caller.access, &unique_email()).await;
    assert_eq!(data(&body, "requestEmailChange"), true, "{body}");
    strict.advance(2);
    let body = request_change(&strict, &caller.access, &unique_email()).await;
    assert_eq!(
        body["errors"][0]["extensions"]["maxAgeSeconds"], 60,
        "{body}"
    );
}

#[tokio::test]
async fn bad_requests_name_the_field_and_need_a_session() {
    let app = spawn_app().await;
    let email = unique_email();
    let caller = app.signed_up(&email).await;
    for (address, message) in [
        (email.to_uppercase(), "already the address"),
        ("not an address".to_owned(), "valid email"),
    ] {
        let body = request_change(&app, &caller.access, &address).await;
        let fields = fields(&body);
        let said = fields["newEmail"][0].as_str().unwrap();
        assert!(said.contains(message), "{body}");
    }
    let body = app.graphql(REQUEST, json!({ "e": unique_email() })).await;
    assert_code(&body, "UNAUTHENTICATED");
    for token in ["", "unknown", &"x".repeat(300)] {
        assert_code(&confirm_change(&app, None, token).await, "INVALID_TOKEN");
    }
}

#[tokio::test]
async fn a_password_reset_or_change_cancels_a_pending_change() {
    let app = spawn_app().await;
    let email = unique_email();
    let caller = app.signed_up(&email).await;
    let new = unique_email();
    request_change(&app, &caller.access, &new).await;
    let token = confirm_token(&app, &new).await;
    let reset = app.reset_token_for(&email).await;
    let body = app.reset_password(&reset, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(data(&body, "resetPassword"), true, "{body}");
    assert_code(&confirm_change(&app, None, &token).await, "INVALID_TOKEN");

    let session = Session::from_payload(data(&app.login(&email, NEW_PASSWORD).await, "login"));
    let newer = unique_email();
    request_change(&app, &session.access, &newer).await;
    let token = confirm_token(&app, &newer).await;
    let body = app
        .graphql_as(
            "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { accessToken } }",
            json!({ "i": { "currentPassword": NEW_PASSWORD,
                           "newPassword": "another fine password 7",
                           "newPasswordConfirm": "another fine password 7" } }),
            Some(&session.access),
        )
        .await;
    data(&body, "changePassword");
    assert_code(&confirm_change(&app, None, &token).await, "INVALID_TOKEN");
    data(&app.login(&email, "another fine password 7").await, "login");
}

#[tokio::test]
async fn the_unique_index_decides_who_gets_an_address() {
    let app = spawn_app().await;
    let wanted = unique_email();
    let first = app.signed_up(&unique_email()).await;
    let second = app.signed_up(&unique_email()).await;
    for caller in [&first, &second] {
        request_change(&app, &caller.access, &wanted).await;
    }
    let links = eventually(
        std::time::Duration::from_secs(10),
        "two confirm links",
        || async {
            let links: Vec<String> = app
                .mail
                .to(&wanted)
                .iter()
                .filter(|m| is_confirm_link(m))
                .map(|m| m.link_token(EMAIL_CHANGE_URL))
                .collect();
            if links.len() == 2 {
                Ok(links)
            } else {
                Err(format!("{} links", links.len()))
            }
        },
    )
    .await;
    let (a, b) = tokio::join!(
        confirm_change(&app, None, &links[0]),
        confirm_change(&app, None, &links[1])
    );
    let won = [&a, &b]
        .iter()
        .filter(|r| r["data"]["confirmEmailChange"] == true)
        .count();
    assert_eq!(won, 1, "{a} {b}");
    let lost = if a["data"]["confirmEmailChange"] == true {
        &b
    } else {
        &a
    };
    assert_code(lost, "INVALID_TOKEN");
    // An address registered after the request is not taken over by the link either.
    let caller = app.signed_up(&unique_email()).await;
    let late = unique_email();
    request_change(&app, &caller.access, &late).await;
    let token = confirm_token(&app, &late).await;
    app.signed_up(&late).await;
    assert_code(&confirm_change(&app, None, &token).await, "INVALID_TOKEN");
}

#[tokio::test]
async fn requests_are_capped_per_account() {
    let app = spawn_app().await;
    let caller = app.signed_up(&unique_email()).await;
    for _ in 0..5 {
        let body = request_change(&app, &caller.access, &unique_email()).await;
        assert_eq!(data(&body, "requestEmailChange"), true, "{body}");
    }
    let body = request_change(&app, &caller.access, &unique_email()).await;
    assert!(retry_after(&body) > 0, "{body}");
}

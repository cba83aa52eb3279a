//! `logout`: the session and its whole token family end at once.

use crate::support::*;

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let other = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    assert_eq!(data(&app.logout(&session.refresh).await, "logout"), true);
    assert_code(&app.refresh(&session.refresh).await, "INVALID_TOKEN");
    // The session's access token stops working now, not at its expiry.
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
    // The user's other session is untouched.
    data(&app.me(Some(&other.access)).await, "me");
    data(&app.refresh(&other.refresh).await, "refreshToken");
}

#[tokio::test]
async fn logout_revokes_the_whole_family() {
    let app = spawn_app().await;
    let first = app.signed_up(&unique_email()).await;
    let second = Session::from_payload(data(&app.refresh(&first.refresh).await, "refreshToken"));
    // Logging out with the older token of the family ends the newer one too.
    assert_eq!(data(&app.logout(&first.refresh).await, "logout"), true);
    assert_code(&app.refresh(&second.refresh).await, "INVALID_TOKEN");
    assert_code(&app.me(Some(&second.access)).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn logout_is_idempotent() {
    let app = spawn_app().await;
    let session = app.signed_up(&unique_email()).await;
    assert_eq!(data(&app.logout(&session.refresh).await, "logout"), true);
    assert_eq!(data(&app.logout(&session.refresh).await, "logout"), true);
    assert_eq!(data(&app.logout("never-issued").await, "logout"), true);
    assert_eq!(data(&app.logout("").await, "logout"), true);
}

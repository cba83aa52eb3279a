//! Password reset: the mail, the one-use token, and what a reset ends.

use crate::support::*;

#[tokio::test]
async fn the_full_reset_flow_over_smtp() {
    let app = spawn_app().await;
    let email = unique_email();
    let old_session = app.signed_up(&email).await;
    let refreshed = Session::from_payload(data(
        &app.refresh(&old_session.refresh).await,
        "refreshToken",
    ));
    let other_session = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));

    assert_eq!(
        data(
            &app.request_reset(&email.to_uppercase()).await,
            "requestPasswordReset"
        ),
        true
    );
    let mail = app.mail.wait_for(&email, 1).await.remove(0);
    assert!(mail.subject().contains("Reset your"), "{}", mail.subject());
    let token = mail.reset_token();
    assert!(token.len() >= 43, "at least 256 bits: {token}");
    assert!(
        mail.text()
            .contains(&format!("https://app.test/reset-password?token={token}"))
    );
    assert!(mail.html().contains(&format!(
        "href=\"https://app.test/reset-password?token={token}\""
    )));

    let resp = app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(data(&resp, "resetPassword"), true);

    assert_code(&app.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");
    // Every earlier refresh token of every session is rejected, and the access tokens too.
    for refresh in [
        &old_session.refresh,
        &refreshed.refresh,
        &other_session.refresh,
    ] {
        assert_code(&app.refresh(refresh).await, "INVALID_TOKEN");
    }
    for access in [&refreshed.access, &other_session.access] {
        assert_code(&app.me(Some(access)).await, "UNAUTHENTICATED");
    }
    let fresh = Session::from_payload(data(&app.login(&email, NEW_PASSWORD).await, "login"));
    data(&app.me(Some(&fresh.access)).await, "me");

    let mails = app.mail.wait_for(&email, 2).await;
    assert!(
        mails[1].subject().contains("password was changed"),
        "{}",
        mails[1].subject()
    );
    assert!(!mails[1].text().contains(&token));
}

#[tokio::test]
async fn unknown_and_inactive_addresses_get_true_and_no_mail() {
    let app = spawn_app().await;
    let inactive = unique_email();
    app.signed_up(&inactive).await;
    app.deactivate(&inactive).await;
    assert_eq!(
        data(
            &app.request_reset("nobody@example.com").await,
            "requestPasswordReset"
        ),
        true
    );
    assert_eq!(
        data(&app.request_reset(&inactive).await, "requestPasswordReset"),
        true
    );
    app.settle().await;
    assert!(app.mail.all().is_empty(), "no mail: {:?}", app.mail.all());
}

#[tokio::test]
async fn a_malformed_address_is_bad_user_input() {
    let app = spawn_app().await;
    assert!(fields(&app.request_reset("not an email").await).contains_key("email"));
}

#[tokio::test]
async fn a_newer_request_replaces_the_older_token() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let first = app.reset_token_for(&email).await;
    let second = app.reset_token_for(&email).await;
    assert_ne!(first, second);
    assert_code(
        &app.reset_password(&first, NEW_PASSWORD, NEW_PASSWORD).await,
        "INVALID_TOKEN",
    );
    assert_eq!(
        data(
            &app.reset_password(&second, NEW_PASSWORD, NEW_PASSWORD)
                .await,
            "resetPassword"
        ),
        true
    );
}

#[tokio::test]
async fn a_token_works_once() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let token = app.reset_token_for(&email).await;
    data(
        &app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "resetPassword",
    );
    let again = app
        .reset_password(&token, "another fine passphrase", "another fine passphrase")
        .await;
    assert_code(&again, "INVALID_TOKEN");
    data(&app.login(&email, NEW_PASSWORD).await, "login");
}

#[tokio::test]
async fn tokens_expire() {
    let app = spawn_app_with(&[("PASSWORD_RESET_TTL", "600")]).await;
    let email = unique_email();
    app.signed_up(&email).await;
    let token = app.reset_token_for(&email).await;
    app.advance(601);
    assert_code(
        &app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "INVALID_TOKEN",
    );
    data(&app.login(&email, PASSWORD).await, "login");
}

#[tokio::test]
async fn a_rejected_password_leaves_the_token_usable() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let token = app.reset_token_for(&email).await;
    let weak = app.reset_password(&token, "password1", "password1").await;
    assert!(
        fields(&weak)["newPassword"].to_string().contains("common"),
        "{weak}"
    );
    let mismatch = app
        .reset_password(&token, NEW_PASSWORD, "something else")
        .await;
    assert!(
        fields(&mismatch).contains_key("newPasswordConfirm"),
        "{mismatch}"
    );
    let similar = app.reset_password(&token, &email, &email).await;
    assert!(
        fields(&similar)["newPassword"]
            .to_string()
            .contains("email"),
        "{similar}"
    );
    data(
        &app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await,
        "resetPassword",
    );
}

#[tokio::test]
async fn a_forged_token_is_invalid() {
    let app = spawn_app().await;
    assert_code(
        &app.reset_password("forged", NEW_PASSWORD, NEW_PASSWORD)
            .await,
        "INVALID_TOKEN",
    );
    assert_code(
        &app.reset_password("", NEW_PASSWORD, NEW_PASSWORD).await,
        "INVALID_TOKEN",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_resets_with_one_token_exactly_one_succeeds() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let token = app.reset_token_for(&email).await;
    let (a, b) = tokio::join!(
        app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD),
        app.reset_password(&token, "another fine passphrase", "another fine passphrase"),
    );
    let wins: Vec<_> = [&a, &b]
        .into_iter()
        .filter(|r| r.get("errors").is_none())
        .collect();
    assert_eq!(wins.len(), 1, "{a}\n{b}");
    let loser = if a.get("errors").is_none() { &b } else { &a };
    assert_code(loser, "INVALID_TOKEN");
    let winner_password = if a.get("errors").is_none() {
        NEW_PASSWORD
    } else {
        "another fine passphrase"
    };
    data(&app.login(&email, winner_password).await, "login");
}

#[tokio::test]
async fn a_reset_the_database_refuses_leaves_the_token_and_the_password() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let token = app.reset_token_for(&email).await;
    // A real fault in the database: every write of the password hash is refused.
    let (fault, repair) = if backend() == Backend::Postgres {
        (
            "ALTER TABLE users ADD CONSTRAINT reset_fault CHECK (false) NOT VALID",
            "ALTER TABLE users DROP CONSTRAINT reset_fault",
        )
    } else {
        (
            "CREATE TRIGGER reset_fault BEFORE UPDATE OF password_hash ON users \
             BEGIN SELECT RAISE(ABORT, 'reset fault'); END",
            "DROP TRIGGER reset_fault",
        )
    };
    app.sql(fault).await;
    let resp = app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_code(&resp, "INTERNAL_SERVER_ERROR");
    app.sql(repair).await;

    // The password is unchanged, and the same link still works.
    data(&app.login(&email, PASSWORD).await, "login");
    let resp = app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(data(&resp, "resetPassword"), true);
    assert_code(&app.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");
    data(&app.login(&email, NEW_PASSWORD).await, "login");
    // And only once.
    let again = app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_code(&again, "INVALID_TOKEN");
}

#[tokio::test]
async fn a_reset_batch_the_database_refuses_is_retried_then_counted_never_dropped() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    // A real fault in the database: no mail can be queued.
    let (fault, repair) = if backend() == Backend::Postgres {
        (
            "ALTER TABLE outbox ADD CONSTRAINT mail_fault CHECK (false) NOT VALID",
            "ALTER TABLE outbox DROP CONSTRAINT mail_fault",
        )
    } else {
        (
            "CREATE TRIGGER mail_fault BEFORE INSERT ON outbox \
             BEGIN SELECT RAISE(ABORT, 'mail fault'); END",
            "DROP TRIGGER mail_fault",
        )
    };
    let metric = |name: &'static str| {
        let app = &app;
        async move { sample(&app.metrics().await, name) }
    };
    app.sql(fault).await;
    assert_eq!(
        data(&app.request_reset(&email).await, "requestPasswordReset"),
        true
    );
    // The batch fails and is tried again, with back-off, then given up: counted.
    eventually(
        std::time::Duration::from_secs(30),
        "a batch that keeps failing is given up and counted",
        || async {
            let failed = metric("identity_reset_requests_failed_total").await;
            if failed == 1.0 {
                Ok(())
            } else {
                Err(app.metrics().await)
            }
        },
    )
    .await;
    assert!(metric("identity_reset_batch_retries_total").await >= 1.0);

    // The next one fails too, and goes out once the database is repaired.
    assert_eq!(
        data(&app.request_reset(&email).await, "requestPasswordReset"),
        true
    );
    let before = metric("identity_reset_batch_retries_total").await;
    eventually(
        std::time::Duration::from_secs(10),
        "the failed batch is retried",
        || async {
            let retries = metric("identity_reset_batch_retries_total").await;
            if retries > before {
                Ok(())
            } else {
                Err(app.metrics().await)
            }
        },
    )
    .await;
    app.sql(repair).await;
    let mail = app.mail.wait_for(&email, 1).await.remove(0);
    assert!(mail.is_reset(), "{}", mail.subject());
    assert_eq!(metric("identity_reset_requests_failed_total").await, 1.0);
}

//! Email verification: the link `register` mails, `verifyEmail`, resends and their
//! caps, and `REQUIRE_VERIFIED_EMAIL`.

use migration::MigratorTrait;
use serde_json::{Value, json};

use crate::support::*;

const VERIFY: &str = "mutation($token: String!) { verifyEmail(token: $token) }";
const RESEND: &str = "mutation($email: String!) { resendVerificationEmail(email: $email) }";

async fn verify(app: &TestApp, token: &str) -> Value {
    app.graphql(VERIFY, json!({ "token": token })).await
}

async fn resend(app: &TestApp, email: &str) -> Value {
    app.graphql(RESEND, json!({ "email": email })).await
}

async fn email_verified(app: &TestApp, access: &str) -> bool {
    let resp = app
        .graphql_as(
            "{ me { emailVerified hasPassword } }",
            json!({}),
            Some(access),
        )
        .await;
    assert_eq!(data(&resp, "me")["hasPassword"], true);
    data(&resp, "me")["emailVerified"].as_bool().unwrap()
}

#[tokio::test]
async fn the_link_from_the_register_mail_verifies_once() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    assert!(!email_verified(&app, &session.access).await);

    let mail = app.mail.wait_for_verifications(&email, 1).await.remove(0);
    let token = mail.verify_token();
    assert!(token.len() >= 43, "at least 256 bits: {token}");
    assert!(
        mail.text()
            .contains(&format!("https://app.test/verify-email?token={token}"))
    );
    assert!(mail.html().contains(&format!(
        "href=\"https://app.test/verify-email?token={token}\""
    )));

    let resp = verify(&app, &token).await;
    assert_eq!(data(&resp, "verifyEmail"), true);
    // Never signs in: the answer is a bare Boolean and nothing else.
    assert_eq!(resp["data"], json!({ "verifyEmail": true }));
    assert!(email_verified(&app, &session.access).await);

    assert_code(&verify(&app, &token).await, "INVALID_TOKEN");
    assert_code(&verify(&app, "not-a-token").await, "INVALID_TOKEN");
    let events = app.audit_events().await;
    assert!(
        events
            .iter()
            .any(|(e, u, _)| e == "email_verified" && u.as_deref() == Some(&session.user_id)),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_newer_link_replaces_the_older_and_links_expire() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let first = app.mail.wait_for_verifications(&email, 1).await[0].verify_token();

    assert_eq!(
        data(&resend(&app, &email).await, "resendVerificationEmail"),
        true
    );
    let second = app.mail.wait_for_verifications(&email, 2).await[1].verify_token();
    assert_ne!(first, second);
    assert_code(&verify(&app, &first).await, "INVALID_TOKEN");

    // The second link expires after EMAIL_VERIFY_TTL (86400 s by default).
    app.advance(86_401);
    assert_code(&verify(&app, &second).await, "INVALID_TOKEN");
    let session = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    assert!(!email_verified(&app, &session.access).await);
}

#[tokio::test]
async fn resends_are_capped_and_answer_true_for_every_address() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    app.mail.wait_for_verifications(&email, 1).await;
    for _ in 0..20 {
        assert_eq!(
            data(&resend(&app, &email).await, "resendVerificationEmail"),
            true
        );
    }
    app.mail.wait_for_verifications(&email, 2).await;
    app.settle().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.settle().await;
    assert_eq!(
        app.mail.verifications(&email).len(),
        2,
        "the register mail and one resend"
    );

    // Unknown and verified addresses: true, and no mail.
    let verified = unique_email();
    app.signed_up(&verified).await;
    let token = app.mail.wait_for_verifications(&verified, 1).await[0].verify_token();
    assert_eq!(data(&verify(&app, &token).await, "verifyEmail"), true);
    for address in ["nobody@example.com", verified.as_str()] {
        assert_eq!(
            data(&resend(&app, address).await, "resendVerificationEmail"),
            true
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.settle().await;
    assert!(app.mail.verifications("nobody@example.com").is_empty());
    assert_eq!(app.mail.verifications(&verified).len(), 1);
    assert_code(&resend(&app, "not an address").await, "BAD_USER_INPUT");
}

#[tokio::test]
async fn required_verification_holds_back_tokens_until_the_link_is_used() {
    let app = spawn_app_with(&[("REQUIRE_VERIFIED_EMAIL", "true")]).await;
    let email = unique_email();
    let resp = app.register(&email).await;
    assert_code(&resp, "EMAIL_NOT_VERIFIED");
    assert_eq!(resp["errors"][0]["extensions"]["email"], email.as_str());
    assert!(
        resp["data"].is_null() || resp["data"]["register"].is_null(),
        "{resp}"
    );
    let token = app.mail.wait_for_verifications(&email, 1).await[0].verify_token();

    assert_code(
        &app.login(&email, "wrong password 123").await,
        "INVALID_CREDENTIALS",
    );
    let resp = app.login(&email, PASSWORD).await;
    assert_code(&resp, "EMAIL_NOT_VERIFIED");
    assert_eq!(resp["errors"][0]["extensions"]["email"], email.as_str());
    // The right password re-mails a link.
    app.mail.wait_for_verifications(&email, 2).await;

    // The older link was replaced by the login's.
    assert_code(&verify(&app, &token).await, "INVALID_TOKEN");
    let token = app.mail.verifications(&email)[1].verify_token();
    assert_eq!(data(&verify(&app, &token).await, "verifyEmail"), true);
    let session = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    assert!(email_verified(&app, &session.access).await);
}

#[tokio::test]
async fn accounts_made_before_the_migration_read_as_verified() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    assert!(!email_verified(&app, &session.access).await);
    // Undo the verification migration (and those after it) and apply them again, as on
    // an old database.
    let all = migration::Migrator::migrations();
    let at = all
        .iter()
        .position(|m| m.name().contains("_email_verification"))
        .unwrap();
    let steps = u32::try_from(all.len() - at).unwrap();
    let db = app.db().await;
    migration::Migrator::down(&db, Some(steps)).await.unwrap();
    migration::Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();
    // `me` may answer from the profile kept in memory; a login reads the account from
    // the database.
    let login = app
        .graphql(
            "mutation($e: String!, $p: String!) { login(input: { email: $e, password: $p }) \
             { user { emailVerified } } }",
            json!({ "e": email, "p": PASSWORD }),
        )
        .await;
    assert_eq!(data(&login, "login")["user"]["emailVerified"], true);
}

#[tokio::test]
async fn concurrent_uses_of_one_token_succeed_once() {
    let app = spawn_app().await;
    let email = unique_email();
    app.signed_up(&email).await;
    let token = app.mail.wait_for_verifications(&email, 1).await[0].verify_token();
    let answers = futures::future::join_all((0..8).map(|_| verify(&app, &token))).await;
    let ok = answers.iter().filter(|r| r.get("errors").is_none()).count();
    assert_eq!(ok, 1, "{answers:?}");
    for answer in answers.iter().filter(|r| r.get("errors").is_some()) {
        assert_code(answer, "INVALID_TOKEN");
    }
}

//! TOTP and recovery codes: enrolment, the second step of a login, no replay, the
//! limits on wrong codes, recovery codes, and the guard of sensitive operations on an
//! account with a second factor. Codes are computed here from the `otpauthUri`.

use identity::clock::Clock;
use serde_json::{Value, json};
use totp_rs::Totp;

use crate::support::*;

const BEGIN: &str =
    "mutation { beginTotpEnrollment { enrollmentId secret otpauthUri qrCodeSvg expiresAt } }";
const CONFIRM: &str = "mutation($id: ID!, $code: String!) { confirmTotpEnrollment(enrollmentId: $id, code: $code) { recoveryCodes auth { accessToken refreshToken expiresIn user { id email } } } }";
const VERIFY: &str = "mutation($i: VerifyMfaInput!) { verifyMfa(input: $i) { accessToken refreshToken user { id email } } }";
const STATUS: &str = "{ mfaStatus { totpEnabled passkeyCount recoveryCodesRemaining } }";
const REAUTH: &str =
    "mutation($i: ReauthenticateInput!) { reauthenticate(input: $i) { accessToken acr } }";

/// A user with TOTP on: their authenticator, recovery codes and `aal2` session.
struct Enrolled {
    email: String,
    totp: Totp,
    recovery_codes: Vec<String>,
    session: Session,
}

/// The code the authenticator shows at the server's current time.
fn code_now(app: &TestApp, totp: &Totp) -> String {
    totp.generate(u64::try_from(app.clock.now().timestamp()).unwrap())
        .to_string()
}

async fn begin(app: &TestApp, access: &str) -> Value {
    app.graphql_as(BEGIN, json!({}), Some(access)).await
}

async fn confirm(app: &TestApp, access: &str, id: &str, code: &str) -> Value {
    app.graphql_as(CONFIRM, json!({ "id": id, "code": code }), Some(access))
        .await
}

async fn verify(app: &TestApp, factor: Value) -> Value {
    app.graphql(VERIFY, json!({ "i": factor })).await
}

/// `verifyMfa` with a TOTP code.
async fn verify_code(app: &TestApp, token: &str, code: &str) -> Value {
    verify(app, json!({ "mfaToken": token, "totpCode": code })).await
}

/// Signs up and turns TOTP on (the clock should be frozen).
async fn enrolled(app: &TestApp) -> Enrolled {
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let started = begin(app, &session.access).await;
    let started = data(&started, "beginTotpEnrollment");
    let totp = Totp::from_url(started["otpauthUri"].as_str().unwrap()).unwrap();
    let id = started["enrollmentId"].as_str().unwrap();
    let body = confirm(app, &session.access, id, &code_now(app, &totp)).await;
    let enabled = data(&body, "confirmTotpEnrollment");
    Enrolled {
        email,
        totp,
        recovery_codes: enabled["recoveryCodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect(),
        session: Session::from_payload(&enabled["auth"]),
    }
}

/// A login with the right password: `MFA_REQUIRED`; returns the `mfaToken`.
async fn mfa_token(app: &TestApp, email: &str) -> String {
    let body = app.login(email, PASSWORD).await;
    assert_code(&body, "MFA_REQUIRED");
    assert!(
        body["data"].is_null(),
        "no tokens before the second factor: {body}"
    );
    body["errors"][0]["extensions"]["mfaToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn enrolment_turns_totp_on_and_replaces_every_session() {
    let app = spawn_app().await;
    app.freeze_clock();
    let email = unique_email();
    let caller = app.signed_up(&email).await;
    let other = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));

    let body = begin(&app, &caller.access).await;
    let started = data(&body, "beginTotpEnrollment");
    let uri = started["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Identity:"), "{uri}");
    for part in ["algorithm=SHA1", "digits=6", "period=30", "issuer=Identity"] {
        assert!(uri.contains(part), "{part} in {uri}");
    }
    let secret = started["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    assert!(uri.contains(secret));
    assert!(started["qrCodeSvg"].as_str().unwrap().contains("<svg"));
    let totp = Totp::from_url(uri).unwrap();
    let id = started["enrollmentId"].as_str().unwrap();
    // Nothing is on until a code confirms it.
    data(&app.login(&email, PASSWORD).await, "login");
    let wrong = format!(
        "{:06}",
        (code_now(&app, &totp).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    assert_code(
        &confirm(&app, &caller.access, id, &wrong).await,
        "INVALID_CREDENTIALS",
    );

    let body = confirm(&app, &caller.access, id, &code_now(&app, &totp)).await;
    let enabled = data(&body, "confirmTotpEnrollment");
    let codes = enabled["recoveryCodes"].as_array().unwrap();
    assert_eq!(codes.len(), 10, "{body}");
    let fresh = Session::from_payload(&enabled["auth"]);
    let claims = claims_of(&fresh.access);
    assert_eq!(claims["acr"], "aal2", "{claims}");
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]), "{claims}");
    // The calling session and the other one are over; the new one works.
    for old in [&caller, &other] {
        assert_code(&app.me(Some(&old.access)).await, "UNAUTHENTICATED");
        assert_code(&app.refresh(&old.refresh).await, "INVALID_TOKEN");
    }
    let status = app.graphql_as(STATUS, json!({}), Some(&fresh.access)).await;
    assert_eq!(
        data(&status, "mfaStatus"),
        &json!({ "totpEnabled": true, "passkeyCount": 0, "recoveryCodesRemaining": 10 })
    );
    // The enrolment is used up, and TOTP cannot be enrolled twice.
    assert_code(
        &confirm(&app, &fresh.access, id, &code_now(&app, &totp)).await,
        "INVALID_TOKEN",
    );
    let again = begin(&app, &fresh.access).await;
    assert_code(&again, "CONFLICT");
    assert_eq!(
        again["errors"][0]["extensions"]["reason"],
        "TOTP_ALREADY_ENABLED"
    );
    let mails = app.mail.wait_for(&email, 1).await;
    assert!(
        mails[0].subject().contains("Two-step sign-in is on"),
        "{}",
        mails[0].subject()
    );
    // The export tells the status, never the secret or a code.
    let export = app
        .graphql_as("{ myData }", json!({}), Some(&fresh.access))
        .await;
    let export = data(&export, "myData");
    assert_eq!(export["mfa"]["totpEnabled"], true, "{export}");
    assert_eq!(export["mfa"]["recoveryCodesRemaining"], 10, "{export}");
    let text = export.to_string();
    assert!(!text.contains(secret));
    for code in codes {
        assert!(!text.contains(code.as_str().unwrap()));
    }
    // The secret is sealed at rest.
    let stored = app.sql_string("SELECT secret FROM user_totp").await;
    assert!(stored[0].starts_with("v1."), "{stored:?}");
    assert!(!stored[0].contains(secret));
}

#[tokio::test]
async fn a_login_needs_the_second_factor_and_a_code_works_once() {
    let app = spawn_app().await;
    app.freeze_clock();
    let user = enrolled(&app).await;
    // The enrolment's code cannot be replayed as the first login code.
    let token = mfa_token(&app, &user.email).await;
    let enrolment_code = code_now(&app, &user.totp);
    let body = verify_code(&app, &token, &enrolment_code).await;
    assert_code(&body, "INVALID_CREDENTIALS");

    app.advance(30);
    let code = code_now(&app, &user.totp);
    let body = verify_code(&app, &token, &code).await;
    let session = Session::from_payload(data(&body, "verifyMfa"));
    let claims = claims_of(&session.access);
    assert_eq!(claims["acr"], "aal2");
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    data(&app.me(Some(&session.access)).await, "me");
    // The token is spent; the same code on a new login is a replay.
    assert_code(&verify_code(&app, &token, &code).await, "INVALID_TOKEN");
    let next = mfa_token(&app, &user.email).await;
    assert_code(
        &verify_code(&app, &next, &code).await,
        "INVALID_CREDENTIALS",
    );
    // The next step's code passes.
    app.advance(30);
    let body = verify_code(&app, &next, &code_now(&app, &user.totp)).await;
    data(&body, "verifyMfa");
    // Not exactly one factor, or a token nobody issued.
    let both = json!({ "mfaToken": next, "totpCode": "123456", "recoveryCode": "x" });
    assert_code(&verify(&app, both).await, "BAD_USER_INPUT");
    assert_code(
        &verify_code(&app, "made-up", "123456").await,
        "INVALID_TOKEN",
    );
    let events: Vec<String> = app.audit_events().await.into_iter().map(|e| e.0).collect();
    for event in [
        "totp_enabled",
        "mfa_challenge_issued",
        "mfa_failed_replay",
        "mfa_verified_totp",
    ] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
}

/// A six-digit code that is not the current one (nor its neighbours).
fn wrong_code(app: &TestApp, totp: &Totp) -> String {
    let now = u64::try_from(app.clock.now().timestamp()).unwrap();
    let near: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| totp.generate(*t).to_string())
        .collect();
    (0..)
        .map(|n: u32| format!("{:06}", n * 7919 % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[tokio::test]
async fn the_sixth_guess_on_one_token_finds_it_dead() {
    let app = spawn_app().await;
    app.freeze_clock();
    let user = enrolled(&app).await;
    app.advance(30);
    let token = mfa_token(&app, &user.email).await;
    for _ in 0..5 {
        let body = verify_code(&app, &token, &wrong_code(&app, &user.totp)).await;
        assert_code(&body, "INVALID_CREDENTIALS");
    }
    let right = code_now(&app, &user.totp);
    assert_code(&verify_code(&app, &token, &right).await, "INVALID_TOKEN");
    // A new login goes on as usual.
    let token = mfa_token(&app, &user.email).await;
    data(&verify_code(&app, &token, &right).await, "verifyMfa");
}

#[tokio::test]
async fn ten_wrong_codes_in_a_row_lock_the_second_step_and_mail_the_owner() {
    let app = spawn_app().await;
    app.freeze_clock();
    let user = enrolled(&app).await;
    app.advance(30);
    for _ in 0..2 {
        let token = mfa_token(&app, &user.email).await;
        for _ in 0..5 {
            let body = verify_code(&app, &token, &wrong_code(&app, &user.totp)).await;
            assert_code(&body, "INVALID_CREDENTIALS");
        }
    }
    let token = mfa_token(&app, &user.email).await;
    let right = json!({ "mfaToken": token, "totpCode": code_now(&app, &user.totp) });
    let body = verify(&app, right.clone()).await;
    let wait = retry_after(&body);
    assert!(wait > 800 && wait <= 900, "{body}");
    eventually(
        std::time::Duration::from_secs(10),
        "the lock mail",
        || async {
            app.mail
                .to(&user.email)
                .into_iter()
                .find(|m| m.subject().contains("paused"))
        },
    )
    .await;
    app.advance(900);
    let token = mfa_token(&app, &user.email).await;
    let body = verify_code(&app, &token, &code_now(&app, &user.totp)).await;
    data(&body, "verifyMfa");
}

#[tokio::test]
async fn recovery_codes_work_once_each_in_any_order() {
    let app = spawn_app().await;
    app.freeze_clock();
    let user = enrolled(&app).await;
    let code = &user.recovery_codes[6];
    let token = mfa_token(&app, &user.email).await;
    let body = verify(&app, json!({ "mfaToken": token, "recoveryCode": code })).await;
    let session = Session::from_payload(data(&body, "verifyMfa"));
    assert_eq!(
        claims_of(&session.access)["amr"],
        json!(["pwd", "rec", "mfa"])
    );
    let notice = eventually(
        std::time::Duration::from_secs(10),
        "the recovery mail",
        || async {
            app.mail
                .to(&user.email)
                .into_iter()
                .find(|m| m.subject().contains("recovery code was used"))
        },
    )
    .await;
    assert!(
        notice.text().contains("9 of your recovery codes are left"),
        "{}",
        notice.text()
    );
    let token = mfa_token(&app, &user.email).await;
    assert_code(
        &verify(&app, json!({ "mfaToken": token, "recoveryCode": code })).await,
        "INVALID_CREDENTIALS",
    );
    // Typed in capitals and without dashes, the first one works too.
    let typed = user.recovery_codes[0].replace('-', "").to_uppercase();
    data(
        &verify(&app, json!({ "mfaToken": token, "recoveryCode": typed })).await,
        "verifyMfa",
    );

    // New codes replace the old ones.
    let body = app
        .graphql_as(
            "mutation { regenerateRecoveryCodes }",
            json!({}),
            Some(&session.access),
        )
        .await;
    let fresh_codes = data(&body, "regenerateRecoveryCodes")
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(fresh_codes.len(), 10);
    let token = mfa_token(&app, &user.email).await;
    assert_code(
        &verify(
            &app,
            json!({ "mfaToken": token, "recoveryCode": user.recovery_codes[1] }),
        )
        .await,
        "INVALID_CREDENTIALS",
    );
    data(
        &verify(
            &app,
            json!({ "mfaToken": token, "recoveryCode": fresh_codes[1] }),
        )
        .await,
        "verifyMfa",
    );
}

#[tokio::test]
async fn turning_totp_off_needs_a_fresh_second_factor_and_signs_out_the_rest() {
    let app = spawn_app().await;
    app.freeze_clock();
    let user = enrolled(&app).await;
    app.advance(30);
    let token = mfa_token(&app, &user.email).await;
    let other = Session::from_payload(data(
        &verify_code(&app, &token, &code_now(&app, &user.totp)).await,
        "verifyMfa",
    ));
    app.advance(400);
    let stale = app
        .graphql_as(
            "mutation { disableTotp }",
            json!({}),
            Some(&user.session.access),
        )
        .await;
    assert_code(&stale, "REAUTHENTICATION_REQUIRED");
    let body = app
        .graphql_as(
            REAUTH,
            json!({ "i": { "totpCode": code_now(&app, &user.totp) } }),
            Some(&user.session.access),
        )
        .await;
    let reauth = data(&body, "reauthenticate");
    assert_eq!(reauth["acr"], "aal2");
    let access = reauth["accessToken"].as_str().unwrap().to_owned();
    let body = app
        .graphql_as("mutation { disableTotp }", json!({}), Some(&access))
        .await;
    assert_eq!(data(&body, "disableTotp"), true, "{body}");
    assert_code(&app.refresh(&other.refresh).await, "INVALID_TOKEN");
    data(&app.me(Some(&access)).await, "me");
    // A login is one step again; turning it off twice is a conflict.
    data(&app.login(&user.email, PASSWORD).await, "login");
    let again = app
        .graphql_as("mutation { disableTotp }", json!({}), Some(&access))
        .await;
    assert_code(&again, "CONFLICT");
    assert_eq!(
        again["errors"][0]["extensions"]["reason"],
        "TOTP_NOT_ENABLED"
    );
}

#[tokio::test]
async fn an_aal1_session_on_an_account_with_totp_must_prove_the_second_factor() {
    let app = spawn_app().await;
    app.freeze_clock();
    let user = enrolled(&app).await;
    // A session proved by the password alone (as one made before second factors were
    // required would be): its next access token says aal1.
    app.sql("UPDATE sessions SET aal = 'aal1', amr = 'pwd'")
        .await;
    let refreshed = Session::from_payload(data(
        &app.refresh(&user.session.refresh).await,
        "refreshToken",
    ));
    assert_eq!(claims_of(&refreshed.access)["acr"], "aal1");
    for operation in [
        "mutation { requestEmailChange(newEmail: \"x@example.com\") }",
        "mutation { regenerateRecoveryCodes }",
    ] {
        let body = app
            .graphql_as(operation, json!({}), Some(&refreshed.access))
            .await;
        assert_code(&body, "INSUFFICIENT_AAL");
        assert_eq!(
            body["errors"][0]["extensions"]["requiredAal"], "aal2",
            "{body}"
        );
    }
    let change = app
        .graphql_as(
            "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { accessToken } }",
            json!({ "i": { "currentPassword": PASSWORD, "newPassword": NEW_PASSWORD, "newPasswordConfirm": NEW_PASSWORD } }),
            Some(&refreshed.access),
        )
        .await;
    assert_code(&change, "INSUFFICIENT_AAL");
    app.advance(30);
    let body = app
        .graphql_as(
            REAUTH,
            json!({ "i": { "totpCode": code_now(&app, &user.totp) } }),
            Some(&refreshed.access),
        )
        .await;
    let access = data(&body, "reauthenticate")["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(claims_of(&access)["amr"], json!(["pwd", "otp", "mfa"]));
    let body = app
        .graphql_as(
            "mutation { regenerateRecoveryCodes }",
            json!({}),
            Some(&access),
        )
        .await;
    data(&body, "regenerateRecoveryCodes");
}

#[tokio::test]
async fn one_code_presented_twice_at_once_signs_in_once() {
    let app = spawn_app().await;
    app.freeze_clock();
    let user = enrolled(&app).await;
    app.advance(30);
    let (first, second) = (
        mfa_token(&app, &user.email).await,
        mfa_token(&app, &user.email).await,
    );
    let code = code_now(&app, &user.totp);
    let (a, b) = tokio::join!(
        verify_code(&app, &first, &code),
        verify_code(&app, &second, &code),
    );
    let signed_in = [&a, &b]
        .iter()
        .filter(|r| r["data"]["verifyMfa"]["accessToken"].is_string())
        .count();
    assert_eq!(signed_in, 1, "{a} {b}");
    let lost = if a["data"]["verifyMfa"].is_object() {
        &b
    } else {
        &a
    };
    assert_code(lost, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn a_secret_rotation_keeps_totp_working_and_seals_it_again() {
    let before = spawn_app_with(&[("SECRET_KEY", SECRET)]).await;
    before.freeze_clock();
    let user = enrolled(&before).await;
    let sealed_before = before.sql_string("SELECT secret FROM user_totp").await;
    let rotated = before
        .sibling(&[("SECRET_KEY", NEXT_SECRET), ("SECRET_KEY_PREVIOUS", SECRET)])
        .await;
    rotated.freeze_clock();
    rotated.advance(60);
    let token = mfa_token(&rotated, &user.email).await;
    let body = verify_code(&rotated, &token, &code_now(&rotated, &user.totp)).await;
    data(&body, "verifyMfa");
    let sealed_after = rotated.sql_string("SELECT secret FROM user_totp").await;
    assert_ne!(
        sealed_after, sealed_before,
        "sealed again under the new key"
    );
    // Once the old secret is dropped, the secret still opens.
    let later = before.sibling(&[("SECRET_KEY", NEXT_SECRET)]).await;
    later.freeze_clock();
    later.advance(120);
    let token = mfa_token(&later, &user.email).await;
    let body = verify_code(&later, &token, &code_now(&later, &user.totp)).await;
    data(&body, "verifyMfa");
}

/// A login that read "no TOTP" just before an enrolment committed reaches the session
/// insert after it: the insert itself refuses a one-factor session on an account that
/// now has TOTP (here the store is called as that login would, after the enrolment).
#[tokio::test]
async fn no_one_factor_session_starts_on_an_account_with_totp() {
    use identity::domain::{
        assurance::{Aal, Assurance, Method},
        device::Device,
    };
    use identity::store::sessions::{self, NewSession};

    let app = spawn_app().await;
    app.freeze_clock();
    let enrolled = enrolled(&app).await;
    let hash = app
        .sql_string(&format!(
            "SELECT password_hash FROM users WHERE email = '{}'",
            enrolled.email
        ))
        .await
        .remove(0);
    let user_id: uuid::Uuid = enrolled.session.user_id.parse().unwrap();
    let now = app.clock.now();
    let session = |aal: Aal, amr: Vec<Method>| NewSession {
        user_id,
        password_hash: hash.clone(),
        token_hash: format!("test-{}", uuid::Uuid::new_v4()),
        now,
        expires_at: now + chrono::Duration::hours(1),
        device: Device {
            user_agent: None,
            browser: None,
            os: None,
        },
        ip: None,
        max_per_user: 100,
        idle: std::time::Duration::from_secs(3600),
        assurance: Assurance {
            aal,
            amr,
            auth_time: now,
        },
    };
    let db = app.db().await;
    let one_factor = sessions::create(&db, session(Aal::Aal1, vec![Method::Pwd]))
        .await
        .unwrap();
    assert!(one_factor.is_none(), "an aal1 session on a TOTP account");
    let two_factors = sessions::create(
        &db,
        session(Aal::Aal2, vec![Method::Pwd, Method::Otp, Method::Mfa]),
    )
    .await
    .unwrap();
    assert!(two_factors.is_some());
}

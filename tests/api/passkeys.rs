//! Passkeys (WebAuthn): registration, discoverable login, single-use ceremonies, the
//! signature counter, the limits, rename and remove, and a passkey as the proof of
//! `verifyMfa` and `reauthenticate`. A software authenticator (passkey-rs) plays the
//! browser and the device, at the origin the test app allows (`http://localhost:3000`,
//! relying party `localhost`: the defaults).

use base64::Engine;
use identity::clock::Clock;
use passkey_authenticator::{Authenticator, MockUserValidationMethod, UserCheck};
use passkey_client::{Client, DefaultClientData};
use passkey_crypto::AvailableBackend;
use passkey_types::{Passkey, ctap2::Aaguid, webauthn};
use serde_json::{Value, json};
use totp_rs::Totp;
use url::Url;

use crate::support::*;

const ORIGIN: &str = "http://localhost:3000";
const BEGIN_REGISTRATION: &str =
    "mutation { beginPasskeyRegistration { ceremonyId options expiresAt } }";
const FINISH_REGISTRATION: &str = "mutation($id: ID!, $c: JSON!, $n: String) { finishPasskeyRegistration(ceremonyId: $id, credential: $c, name: $n) { id name createdAt lastUsedAt backedUp } }";
const BEGIN_LOGIN: &str = "mutation { beginPasskeyLogin { ceremonyId options expiresAt } }";
const FINISH_LOGIN: &str = "mutation($i: PasskeyAssertionInput!) { finishPasskeyLogin(input: $i) { accessToken refreshToken user { id email } } }";
const MINE: &str = "{ myPasskeys { id name createdAt lastUsedAt backedUp } }";
const RENAME: &str =
    "mutation($id: ID!, $n: String!) { renamePasskey(id: $id, name: $n) { id name } }";
const REMOVE: &str = "mutation($id: ID!) { removePasskey(id: $id) }";
const VERIFY: &str = "mutation($i: VerifyMfaInput!) { verifyMfa(input: $i) { accessToken refreshToken user { id email } } }";
const REAUTH: &str =
    "mutation($i: ReauthenticateInput!) { reauthenticate(input: $i) { accessToken acr } }";

/// A software authenticator holding one discoverable credential, kept between
/// ceremonies (and copied to play a cloned key).
#[derive(Clone, Default)]
struct SoftKey {
    store: Option<Passkey>,
    /// Whether new credentials keep a signature counter.
    counter: bool,
}

/// A user who verifies every time they are asked.
fn verified_user() -> MockUserValidationMethod {
    let mut user = MockUserValidationMethod::new();
    user.expect_is_presence_enabled().returning(|| true);
    user.expect_is_verification_enabled()
        .returning(|| Some(true));
    user.expect_check_user().returning(|_, _, _| {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    });
    user
}

impl SoftKey {
    fn with_counter() -> Self {
        Self {
            counter: true,
            ..Self::default()
        }
    }

    fn authenticator(
        &self,
    ) -> Authenticator<Option<Passkey>, MockUserValidationMethod, AvailableBackend> {
        let mut authenticator = Authenticator::new(
            Aaguid::new_empty(),
            self.store.clone(),
            verified_user(),
            AvailableBackend,
        );
        authenticator.set_make_credentials_with_signature_counter(self.counter);
        authenticator
    }

    /// `navigator.credentials.create(…)` then `.toJSON()`.
    async fn create(&mut self, options: &Value) -> Value {
        let request: webauthn::CredentialCreationOptions =
            serde_json::from_value(options.clone()).expect("creation options");
        let mut client = Client::new(self.authenticator()).allows_insecure_localhost(true);
        let origin = Url::parse(ORIGIN).unwrap();
        let created = client
            .register(&origin, request, DefaultClientData)
            .await
            .expect("the authenticator creates a credential");
        self.store = client.authenticator().store().clone();
        serde_json::to_value(&created).unwrap()
    }

    /// `navigator.credentials.get(…)` then `.toJSON()`, at `origin`.
    async fn get_at(&mut self, options: &Value, origin: &str) -> Value {
        // An empty allow list is no list to a browser: any discoverable credential.
        let mut options = options.clone();
        if let Some(request) = options["publicKey"].as_object_mut()
            && request
                .get("allowCredentials")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
        {
            request.remove("allowCredentials");
        }
        let request: webauthn::CredentialRequestOptions =
            serde_json::from_value(options).expect("request options");
        let mut client = Client::new(self.authenticator()).allows_insecure_localhost(true);
        let origin = Url::parse(origin).unwrap();
        let asserted = client
            .authenticate(&origin, request, DefaultClientData)
            .await
            .expect("the authenticator signs");
        self.store = client.authenticator().store().clone();
        serde_json::to_value(&asserted).unwrap()
    }

    async fn get(&mut self, options: &Value) -> Value {
        self.get_at(options, ORIGIN).await
    }
}

async fn begin_registration(app: &TestApp, access: &str) -> Value {
    app.graphql_as(BEGIN_REGISTRATION, json!({}), Some(access))
        .await
}

async fn finish_registration(
    app: &TestApp,
    access: &str,
    ceremony_id: &str,
    credential: &Value,
    name: Option<&str>,
) -> Value {
    app.graphql_as(
        FINISH_REGISTRATION,
        json!({ "id": ceremony_id, "c": credential, "n": name }),
        Some(access),
    )
    .await
}

/// Registers a passkey of `key` for the signed-in user; returns the `Passkey`.
async fn register(app: &TestApp, access: &str, key: &mut SoftKey, name: &str) -> Value {
    let body = begin_registration(app, access).await;
    let ceremony = data(&body, "beginPasskeyRegistration");
    let credential = key.create(&ceremony["options"]).await;
    let id = ceremony["ceremonyId"].as_str().unwrap();
    let body = finish_registration(app, access, id, &credential, Some(name)).await;
    data(&body, "finishPasskeyRegistration").clone()
}

/// A begun login ceremony: its id and options.
async fn begin_login(app: &TestApp) -> (String, Value) {
    let body = app.graphql(BEGIN_LOGIN, json!({})).await;
    let ceremony = data(&body, "beginPasskeyLogin");
    (
        ceremony["ceremonyId"].as_str().unwrap().to_owned(),
        ceremony["options"].clone(),
    )
}

async fn finish_login(app: &TestApp, ceremony_id: &str, credential: &Value) -> Value {
    app.graphql(
        FINISH_LOGIN,
        json!({ "i": { "ceremonyId": ceremony_id, "credential": credential } }),
    )
    .await
}

/// A passkey assertion for a fresh login ceremony: `{ceremonyId, credential}`.
async fn assertion(app: &TestApp, key: &mut SoftKey) -> Value {
    let (id, options) = begin_login(app).await;
    let credential = key.get(&options).await;
    json!({ "ceremonyId": id, "credential": credential })
}

async fn passkey_login(app: &TestApp, key: &mut SoftKey) -> Value {
    let input = assertion(app, key).await;
    app.graphql(FINISH_LOGIN, json!({ "i": input })).await
}

async fn mine(app: &TestApp, access: &str) -> Vec<Value> {
    let body = app.graphql_as(MINE, json!({}), Some(access)).await;
    data(&body, "myPasskeys").as_array().unwrap().clone()
}

fn events_of(events: &[(String, Option<String>, Option<String>)], user_id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|(_, user, _)| user.as_deref() == Some(user_id))
        .map(|(event, ..)| event.clone())
        .collect()
}

#[tokio::test]
async fn a_passkey_registered_on_a_fresh_session_signs_in_without_an_email_at_aal2() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;

    let body = begin_registration(&app, &session.access).await;
    let ceremony = data(&body, "beginPasskeyRegistration");
    let options = &ceremony["options"]["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost", "{options}");
    assert_eq!(options["rp"]["name"], "Identity", "{options}");
    assert_eq!(options["attestation"], "none", "{options}");
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{options}");
    assert_eq!(selection["requireResidentKey"], true, "{options}");
    assert_eq!(selection["userVerification"], "required", "{options}");
    // The user handle is random, not the account id.
    let handle = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(options["user"]["id"].as_str().unwrap())
        .unwrap();
    let account = uuid::Uuid::parse_str(&session.user_id).unwrap();
    assert_eq!(handle.len(), 16);
    assert_ne!(handle, account.as_bytes());
    assert_eq!(options["user"]["name"], email.as_str());

    let mut key = SoftKey::default();
    let credential = key.create(&ceremony["options"]).await;
    let id = ceremony["ceremonyId"].as_str().unwrap();
    let body = finish_registration(&app, &session.access, id, &credential, Some("Laptop")).await;
    let passkey = data(&body, "finishPasskeyRegistration");
    assert_eq!(passkey["name"], "Laptop");
    assert!(passkey["lastUsedAt"].is_null(), "{passkey}");
    let listed = mine(&app, &session.access).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(&listed[0], passkey);
    let mails = app.mail.wait_for(&email, 1).await;
    assert!(
        mails[0].subject().contains("A passkey was added"),
        "{}",
        mails[0].subject()
    );

    // The login names no account; webauthn-rs's conditional mediation is cleared.
    let (ceremony_id, options) = begin_login(&app).await;
    assert!(options.get("mediation").is_none(), "{options}");
    let request = &options["publicKey"];
    assert_eq!(request["userVerification"], "required", "{options}");
    assert!(
        request
            .get("allowCredentials")
            .is_none_or(|a| a.as_array().is_some_and(Vec::is_empty)),
        "{options}"
    );
    let credential = key.get(&options).await;
    let body = finish_login(&app, &ceremony_id, &credential).await;
    let signed_in = Session::from_payload(data(&body, "finishPasskeyLogin"));
    assert_eq!(signed_in.user_id, session.user_id);
    let claims = claims_of(&signed_in.access);
    assert_eq!(claims["acr"], "aal2", "{claims}");
    assert_eq!(claims["amr"], json!(["pop", "mfa"]), "{claims}");
    let me = app.me(Some(&signed_in.access)).await;
    assert_eq!(data(&me, "me")["email"], email.as_str());
    let listed = mine(&app, &signed_in.access).await;
    assert!(listed[0]["lastUsedAt"].is_string(), "{listed:?}");

    let status = app
        .graphql_as(
            "{ mfaStatus { passkeyCount } }",
            json!({}),
            Some(&signed_in.access),
        )
        .await;
    assert_eq!(data(&status, "mfaStatus")["passkeyCount"], 1);
    // myData lists it, names and dates only.
    let export = app
        .graphql_as("{ myData }", json!({}), Some(&signed_in.access))
        .await;
    let passkeys = &data(&export, "myData")["passkeys"];
    assert_eq!(passkeys.as_array().unwrap().len(), 1, "{passkeys}");
    assert_eq!(passkeys[0]["name"], "Laptop");
    let mut keys: Vec<&String> = passkeys[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["backedUp", "createdAt", "lastUsedAt", "name"],
        "{passkeys}"
    );

    let events = events_of(&app.audit_events().await, &session.user_id);
    for expected in ["passkey_registered", "passkey_login"] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected}: {events:?}"
        );
    }
}

#[tokio::test]
async fn ceremonies_are_single_use_and_refused_assertions_all_look_alike() {
    let app = spawn_app().await;
    app.freeze_clock();
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let mut key = SoftKey::default();

    // A registration finished twice: the second is refused, and so is a credential
    // already registered.
    let body = begin_registration(&app, &session.access).await;
    let ceremony = data(&body, "beginPasskeyRegistration");
    let created = key.create(&ceremony["options"]).await;
    let id = ceremony["ceremonyId"].as_str().unwrap();
    data(
        &finish_registration(&app, &session.access, id, &created, None).await,
        "finishPasskeyRegistration",
    );
    assert_code(
        &finish_registration(&app, &session.access, id, &created, None).await,
        "INVALID_TOKEN",
    );
    assert_eq!(mine(&app, &session.access).await[0]["name"], "Passkey");

    // The next registration excludes the key already registered, and is finished only
    // by the account that began it.
    let body = begin_registration(&app, &session.access).await;
    let ceremony = data(&body, "beginPasskeyRegistration");
    let excluded: Vec<&Value> = ceremony["options"]["publicKey"]["excludeCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(excluded, [&created["id"]], "{ceremony}");
    let mut spare = SoftKey::default();
    let spare_created = spare.create(&ceremony["options"]).await;
    let id = ceremony["ceremonyId"].as_str().unwrap();
    let intruder = app.signed_up(&unique_email()).await;
    assert_code(
        &finish_registration(&app, &intruder.access, id, &spare_created, None).await,
        "INVALID_TOKEN",
    );
    data(
        &finish_registration(&app, &session.access, id, &spare_created, Some("Spare")).await,
        "finishPasskeyRegistration",
    );

    // A login finished twice.
    let (id, options) = begin_login(&app).await;
    let credential = key.get(&options).await;
    data(
        &finish_login(&app, &id, &credential).await,
        "finishPasskeyLogin",
    );
    assert_code(&finish_login(&app, &id, &credential).await, "INVALID_TOKEN");
    // The same assertion replayed to a new ceremony.
    let (other, _) = begin_login(&app).await;
    assert_code(
        &finish_login(&app, &other, &credential).await,
        "INVALID_CREDENTIALS",
    );
    // Unknown ceremony; expired ceremony.
    assert_code(
        &finish_login(&app, "nope", &credential).await,
        "INVALID_TOKEN",
    );
    let (id, options) = begin_login(&app).await;
    let late = key.get(&options).await;
    app.advance(301);
    assert_code(&finish_login(&app, &id, &late).await, "INVALID_TOKEN");
    // From another origin.
    let (id, options) = begin_login(&app).await;
    let elsewhere = key.get_at(&options, "http://localhost:4000").await;
    assert_code(
        &finish_login(&app, &id, &elsewhere).await,
        "INVALID_CREDENTIALS",
    );
    // Garbage.
    let (id, _) = begin_login(&app).await;
    assert_code(
        &finish_login(&app, &id, &json!({ "id": "x" })).await,
        "INVALID_CREDENTIALS",
    );

    // A key the service does not know (a second user's, removed).
    let other_email = unique_email();
    let other_user = app.signed_up(&other_email).await;
    let mut unknown = SoftKey::default();
    let passkey = register(&app, &other_user.access, &mut unknown, "Old").await;
    let removed = app
        .graphql_as(
            REMOVE,
            json!({ "id": passkey["id"] }),
            Some(&other_user.access),
        )
        .await;
    assert_eq!(data(&removed, "removePasskey"), true);
    assert_code(
        &passkey_login(&app, &mut unknown).await,
        "INVALID_CREDENTIALS",
    );

    // An inactive user; then one whose deletion is scheduled (only a right passkey
    // learns that).
    app.deactivate(&email).await;
    assert_code(&passkey_login(&app, &mut key).await, "INVALID_CREDENTIALS");
    app.sql(&format!(
        "UPDATE users SET is_active = true, deletion_scheduled_for = date_joined WHERE email = '{email}'"
    ))
    .await;
    assert_code(
        &passkey_login(&app, &mut key).await,
        "ACCOUNT_PENDING_DELETION",
    );

    let events = events_of(&app.audit_events().await, &session.user_id);
    assert!(
        events.iter().any(|e| e == "passkey_login_failed"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_signature_counter_that_does_not_go_up_is_refused_audited_and_mailed() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let mut key = SoftKey::with_counter();
    register(&app, &session.access, &mut key, "Security key").await;
    // A copy of the key as it is now: its counter stays behind.
    let mut copy = key.clone();
    data(&passkey_login(&app, &mut key).await, "finishPasskeyLogin");
    data(&passkey_login(&app, &mut key).await, "finishPasskeyLogin");

    assert_code(&passkey_login(&app, &mut copy).await, "INVALID_CREDENTIALS");
    let events = events_of(&app.audit_events().await, &session.user_id);
    assert!(
        events.iter().any(|e| e == "passkey_clone_suspected"),
        "{events:?}"
    );
    let mails = app.mail.wait_for(&email, 2).await;
    assert!(
        mails
            .iter()
            .any(|m| m.subject().contains("may have been copied")),
        "{:?}",
        mails.iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
    // The genuine key goes on working.
    data(&passkey_login(&app, &mut key).await, "finishPasskeyLogin");
}

#[tokio::test]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn a_ceremony_begun_on_one_instance_is_finished_on_another_once() {
    // The embedded default keeps ceremonies in process; sharing needs Redis.
    require_postgres();
    let app = spawn_app().await;
    let other = app.sibling(&[]).await;
    let session = app.signed_up(&unique_email()).await;
    let mut key = SoftKey::default();

    let body = begin_registration(&app, &session.access).await;
    let ceremony = data(&body, "beginPasskeyRegistration");
    let created = key.create(&ceremony["options"]).await;
    let id = ceremony["ceremonyId"].as_str().unwrap();
    data(
        &finish_registration(&other, &session.access, id, &created, Some("Phone")).await,
        "finishPasskeyRegistration",
    );
    assert_code(
        &finish_registration(&app, &session.access, id, &created, None).await,
        "INVALID_TOKEN",
    );

    let (id, options) = begin_login(&other).await;
    let credential = key.get(&options).await;
    let body = finish_login(&app, &id, &credential).await;
    assert_eq!(
        data(&body, "finishPasskeyLogin")["user"]["id"],
        session.user_id.as_str()
    );
    assert_code(
        &finish_login(&other, &id, &credential).await,
        "INVALID_TOKEN",
    );
}

#[tokio::test]
async fn at_most_ten_passkeys_on_a_fresh_session_renamed_and_removed_by_their_owner() {
    let app = spawn_app().await;
    app.freeze_clock();
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let mut keys = Vec::new();
    for n in 0..10 {
        let mut key = SoftKey::default();
        register(&app, &session.access, &mut key, &format!("Key {n}")).await;
        keys.push(key);
    }
    let eleventh = begin_registration(&app, &session.access).await;
    assert_code(&eleventh, "CONFLICT");
    assert_eq!(
        eleventh["errors"][0]["extensions"]["reason"], "TOO_MANY_PASSKEYS",
        "{eleventh}"
    );
    let listed = mine(&app, &session.access).await;
    assert_eq!(listed.len(), 10);
    let first = listed[0]["id"].as_str().unwrap().to_owned();

    // Renaming: 1 to 64 characters, only one's own.
    let rename = |id: String, name: String, access: String| {
        let app = &app;
        async move {
            app.graphql_as(RENAME, json!({ "id": id, "n": name }), Some(&access))
                .await
        }
    };
    let body = rename(
        first.clone(),
        "  Work laptop ".into(),
        session.access.clone(),
    )
    .await;
    assert_eq!(data(&body, "renamePasskey")["name"], "Work laptop");
    for bad in [String::new(), "   ".into(), "x".repeat(65)] {
        let body = rename(first.clone(), bad, session.access.clone()).await;
        assert_code(&body, "BAD_USER_INPUT");
        assert!(fields(&body).contains_key("name"), "{body}");
    }
    let stranger = app.signed_up(&unique_email()).await;
    for id in [first.clone(), uuid::Uuid::new_v4().to_string(), "x".into()] {
        let body = rename(id, "Mine".into(), stranger.access.clone()).await;
        assert_code(&body, "BAD_USER_INPUT");
        assert!(fields(&body).contains_key("id"), "{body}");
    }
    let body = app
        .graphql_as(REMOVE, json!({ "id": first }), Some(&stranger.access))
        .await;
    assert_code(&body, "BAD_USER_INPUT");

    // A stale session can neither add nor remove one.
    app.advance(301);
    assert_code(
        &begin_registration(&app, &session.access).await,
        "REAUTHENTICATION_REQUIRED",
    );
    assert_code(
        &app.graphql_as(REMOVE, json!({ "id": first }), Some(&session.access))
            .await,
        "REAUTHENTICATION_REQUIRED",
    );
    // A passkey login is fresh: removing one works, is mailed, and frees a place.
    let fresh = Session::from_payload(data(
        &passkey_login(&app, &mut keys[1]).await,
        "finishPasskeyLogin",
    ));
    let body = app
        .graphql_as(REMOVE, json!({ "id": first }), Some(&fresh.access))
        .await;
    assert_eq!(data(&body, "removePasskey"), true);
    assert_eq!(mine(&app, &fresh.access).await.len(), 9);
    assert_code(
        &passkey_login(&app, &mut keys[0]).await,
        "INVALID_CREDENTIALS",
    );
    data(
        &begin_registration(&app, &fresh.access).await,
        "beginPasskeyRegistration",
    );
    let mails = app.mail.wait_for(&email, 11).await;
    assert!(
        mails
            .iter()
            .any(|m| m.subject().contains("A passkey was removed")),
        "{:?}",
        mails.iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
    let events = events_of(&app.audit_events().await, &session.user_id);
    for expected in ["passkey_renamed", "passkey_removed"] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected}: {events:?}"
        );
    }
}

#[tokio::test]
async fn the_last_way_to_sign_in_cannot_be_removed() {
    // Every account has a password today; one without (made here by SQL) keeps its
    // last passkey.
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let mut one = SoftKey::default();
    let mut two = SoftKey::default();
    let first = register(&app, &session.access, &mut one, "One").await;
    let second = register(&app, &session.access, &mut two, "Two").await;
    app.sql(&format!(
        "UPDATE users SET password_hash = '' WHERE email = '{email}'"
    ))
    .await;
    let signed_in = Session::from_payload(data(
        &passkey_login(&app, &mut one).await,
        "finishPasskeyLogin",
    ));
    let body = app
        .graphql_as(
            REMOVE,
            json!({ "id": first["id"] }),
            Some(&signed_in.access),
        )
        .await;
    assert_eq!(data(&body, "removePasskey"), true);
    let body = app
        .graphql_as(
            REMOVE,
            json!({ "id": second["id"] }),
            Some(&signed_in.access),
        )
        .await;
    assert_code(&body, "CONFLICT");
    assert_eq!(
        body["errors"][0]["extensions"]["reason"], "LAST_LOGIN_METHOD",
        "{body}"
    );
    data(&passkey_login(&app, &mut two).await, "finishPasskeyLogin");
}

/// Turns TOTP on for the signed-in user; returns the authenticator app.
async fn enrol_totp(app: &TestApp, access: &str) -> Totp {
    let body = app
        .graphql_as(
            "mutation { beginTotpEnrollment { enrollmentId otpauthUri } }",
            json!({}),
            Some(access),
        )
        .await;
    let started = data(&body, "beginTotpEnrollment");
    let totp = Totp::from_url(started["otpauthUri"].as_str().unwrap()).unwrap();
    let code = totp
        .generate(u64::try_from(app.clock.now().timestamp()).unwrap())
        .to_string();
    let body = app
        .graphql_as(
            "mutation($id: ID!, $code: String!) { confirmTotpEnrollment(enrollmentId: $id, code: $code) { recoveryCodes } }",
            json!({ "id": started["enrollmentId"], "code": code }),
            Some(access),
        )
        .await;
    data(&body, "confirmTotpEnrollment");
    totp
}

#[tokio::test]
async fn a_passkey_completes_the_second_step_and_reauthenticates() {
    let app = spawn_app().await;
    app.freeze_clock();
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let mut key = SoftKey::default();
    register(&app, &session.access, &mut key, "Phone").await;
    enrol_totp(&app, &session.access).await;

    // The password login asks for a second step, a passkey among its methods.
    let body = app.login(&email, PASSWORD).await;
    assert_code(&body, "MFA_REQUIRED");
    let extensions = &body["errors"][0]["extensions"];
    assert_eq!(
        extensions["methods"],
        json!(["TOTP", "RECOVERY_CODE", "PASSKEY"]),
        "{body}"
    );
    let mfa_token = extensions["mfaToken"].as_str().unwrap().to_owned();
    // Another user's passkey does not do.
    let stranger = app.signed_up(&unique_email()).await;
    let mut foreign = SoftKey::default();
    register(&app, &stranger.access, &mut foreign, "Theirs").await;
    let input = assertion(&app, &mut foreign).await;
    assert_code(
        &app.graphql(
            VERIFY,
            json!({ "i": { "mfaToken": mfa_token, "passkey": input } }),
        )
        .await,
        "INVALID_CREDENTIALS",
    );
    let input = assertion(&app, &mut key).await;
    let body = app
        .graphql(
            VERIFY,
            json!({ "i": { "mfaToken": mfa_token, "passkey": input } }),
        )
        .await;
    let second_step = Session::from_payload(data(&body, "verifyMfa"));
    let claims = claims_of(&second_step.access);
    assert_eq!(claims["acr"], "aal2", "{claims}");
    assert_eq!(claims["amr"], json!(["pwd", "pop", "mfa"]), "{claims}");

    // A passkey login needs no second step, TOTP or not.
    let direct = Session::from_payload(data(
        &passkey_login(&app, &mut key).await,
        "finishPasskeyLogin",
    ));
    assert_eq!(claims_of(&direct.access)["amr"], json!(["pop", "mfa"]));

    // Once stale, a passkey makes the session fresh (and aal2) again.
    app.advance(301);
    assert_code(
        &begin_registration(&app, &second_step.access).await,
        "REAUTHENTICATION_REQUIRED",
    );
    let input = assertion(&app, &mut foreign).await;
    assert_code(
        &app.graphql_as(
            REAUTH,
            json!({ "i": { "passkey": input } }),
            Some(&second_step.access),
        )
        .await,
        "INVALID_CREDENTIALS",
    );
    let input = assertion(&app, &mut key).await;
    let body = app
        .graphql_as(
            REAUTH,
            json!({ "i": { "passkey": input } }),
            Some(&second_step.access),
        )
        .await;
    let reauthenticated = data(&body, "reauthenticate");
    assert_eq!(reauthenticated["acr"], "aal2");
    let access = reauthenticated["accessToken"].as_str().unwrap();
    assert_eq!(claims_of(access)["amr"], json!(["pwd", "pop", "mfa"]));
    data(
        &begin_registration(&app, access).await,
        "beginPasskeyRegistration",
    );
}

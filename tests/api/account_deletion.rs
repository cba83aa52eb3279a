//! Account deletion and data export: `requestAccountDeletion` signs out everywhere and
//! deletes the account after its grace (at once without one), leaving no row that
//! names it and an audit trail under a keyed hash; `cancelAccountDeletion` keeps it;
//! `myData` gives the owner their data, never a secret, a few times a day.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const REQUEST: &str = "mutation($c: String!) { requestAccountDeletion(confirm: $c) }";
const CANCEL: &str = "mutation($t: String!) { cancelAccountDeletion(token: $t) }";
const MY_DATA: &str = "{ myData }";
const REAUTHENTICATE: &str =
    "mutation($i: ReauthenticateInput!) { reauthenticate(input: $i) { accessToken } }";
const RESEND: &str = "mutation($e: String!) { resendVerificationEmail(email: $e) }";

async fn request_deletion(app: &TestApp, access: &str, confirm: &str) -> Value {
    app.graphql_as(REQUEST, json!({ "c": confirm }), Some(access))
        .await
}

async fn cancel(app: &TestApp, token: &str) -> Value {
    app.graphql(CANCEL, json!({ "t": token })).await
}

async fn my_data(app: &TestApp, access: &str) -> Value {
    app.graphql_as(MY_DATA, json!({}), Some(access)).await
}

fn is_deleted_notice(mail: &ReceivedMail) -> bool {
    mail.subject().contains("has been deleted")
}

/// The token of the cancel link in the `nth` mail (from 1) that announces a deletion.
async fn cancel_token(app: &TestApp, email: &str, nth: usize) -> String {
    let mail = eventually(Duration::from_secs(10), "the deletion mail", || async {
        app.mail
            .to(email)
            .into_iter()
            .filter(|m| m.subject().contains("will be deleted"))
            .nth(nth - 1)
    })
    .await;
    let text = mail.text();
    let prefix = DELETION_CANCEL_URL.split("{token}").next().unwrap();
    let start = text.find(prefix).expect("the cancel link in the mail") + prefix.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn count(app: &TestApp, from: &str) -> String {
    app.sql_string(&format!("SELECT CAST(COUNT(*) AS TEXT) FROM {from}"))
        .await
        .remove(0)
}

/// Every row of every table, each as one text (on SQLite, blobs such as UUIDs in hex):
/// what someone reading the database sees.
async fn every_row(app: &TestApp) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    match backend() {
        Backend::Postgres => {
            let tables = app
                .sql_string(
                    "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                )
                .await;
            for table in tables {
                for row in app
                    .sql_string(&format!("SELECT CAST(t AS TEXT) FROM \"{table}\" t"))
                    .await
                {
                    rows.push((table.clone(), row));
                }
            }
        }
        Backend::Embedded => {
            let tables = app
                .sql_string(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%'",
                )
                .await;
            for table in tables {
                let columns = app
                    .sql_string(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .await;
                let text = columns
                    .iter()
                    .map(|c| {
                        format!(
                            "CASE typeof(\"{c}\") WHEN 'blob' THEN hex(\"{c}\") \
                             ELSE COALESCE(CAST(\"{c}\" AS TEXT), '') END"
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" || ' | ' || ");
                for row in app
                    .sql_string(&format!("SELECT {text} FROM \"{table}\""))
                    .await
                {
                    rows.push((table.clone(), row));
                }
            }
        }
    }
    assert!(
        rows.iter().any(|(table, _)| table == "audit_events"),
        "the tables were read: {rows:?}"
    );
    rows
}

#[tokio::test]
async fn with_no_grace_the_account_is_deleted_at_once_and_leaves_no_row_behind() {
    let app = spawn_app_with(&[("ACCOUNT_DELETION_GRACE", "0")]).await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let other = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    // A reset link open, and mail sent to the address before.
    app.reset_token_for(&email).await;
    app.settle().await;
    let user_id = session.user_id.clone();
    let hex_id = user_id.replace('-', "").to_uppercase();
    let names_user = |row: &str| row.contains(&user_id) || row.to_uppercase().contains(&hex_id);
    // The check below can see the user: before, rows of several tables name them.
    let before = every_row(&app).await;
    for table in ["users", "sessions", "account_tokens", "audit_events"] {
        assert!(
            before.iter().any(|(t, row)| t == table && names_user(row)),
            "{table} names the user before: {before:?}"
        );
    }
    assert!(
        before
            .iter()
            .any(|(t, row)| t == "outbox" && row.contains(&email))
    );

    let body = request_deletion(&app, &session.access, "DELETE").await;
    let at = data(&body, "requestAccountDeletion").as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(at).expect("a DateTime");

    for s in [&session, &other] {
        assert_code(&app.me(Some(&s.access)).await, "UNAUTHENTICATED");
        assert_code(&app.refresh(&s.refresh).await, "INVALID_TOKEN");
    }
    assert_code(&app.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");
    // The last mail goes out; no cancel link is mailed (there is nothing to cancel).
    eventually(Duration::from_secs(10), "the last mail", || async {
        app.mail.to(&email).into_iter().find(is_deleted_notice)
    })
    .await;
    app.settle().await;
    assert!(
        !app.mail
            .to(&email)
            .iter()
            .any(|m| m.subject().contains("will be deleted"))
    );

    // No row names the user, by id (as text, or hex on SQLite) or by address. The last
    // mail's row stays (its bodies sealed and erased once sent), and its recipient is
    // erased with them: it was the address's last trace.
    for (table, row) in every_row(&app).await {
        assert!(!names_user(&row), "a row of {table} names the user: {row}");
        assert!(
            !row.to_lowercase().contains(&email),
            "a row of {table} holds the address: {row}"
        );
    }
    assert_eq!(
        count(
            &app,
            "outbox WHERE kind = 'account_deleted' AND recipient = ''"
        )
        .await,
        "1"
    );

    // The audit trail keeps the account's events under one keyed hash, no user id.
    let hashes = app
        .sql_string("SELECT user_hash FROM audit_events WHERE user_hash IS NOT NULL")
        .await;
    assert!(hashes.len() >= 4, "{hashes:?}");
    assert!(hashes.iter().all(|h| h == &hashes[0] && h.len() >= 32));
    assert!(!hashes[0].contains(&user_id));
    assert_eq!(
        count(&app, "audit_events WHERE user_id IS NOT NULL").await,
        "0"
    );
    let events = app
        .sql_string("SELECT event FROM audit_events WHERE user_hash IS NOT NULL")
        .await;
    for event in [
        "registered",
        "login_succeeded",
        "account_deletion_requested",
        "account_deleted",
    ] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
    assert_eq!(
        sample(&app.metrics().await, "identity_accounts_deleted_total"),
        1.0
    );

    // The address is free again.
    let again = app.signed_up(&email).await;
    assert_ne!(again.user_id, user_id);
}

#[tokio::test]
async fn during_the_grace_the_account_is_signed_out_and_can_be_kept_then_it_is_purged() {
    let app = spawn_app_with(&[("RETENTION_INTERVAL", "1")]).await;
    app.freeze_clock();
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let other = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    app.settle().await;

    let body = request_deletion(&app, &session.access, "DELETE").await;
    let scheduled = data(&body, "requestAccountDeletion")
        .as_str()
        .unwrap()
        .to_owned();
    let at = chrono::DateTime::parse_from_rfc3339(&scheduled).unwrap();
    let in_days = (at.timestamp() - claims_of(&session.access)["iat"].as_i64().unwrap()) / 86_400;
    assert_eq!(in_days, 14, "ACCOUNT_DELETION_GRACE's default: {scheduled}");

    // Every session ends at once, refresh and access tokens alike.
    for s in [&session, &other] {
        assert_code(&app.refresh(&s.refresh).await, "INVALID_TOKEN");
        assert_code(&app.me(Some(&s.access)).await, "UNAUTHENTICATED");
    }
    // Only the right password learns of the deletion.
    let pending = app.login(&email, PASSWORD).await;
    assert_code(&pending, "ACCOUNT_PENDING_DELETION");
    assert_eq!(
        pending["errors"][0]["extensions"]["scheduledFor"], scheduled,
        "{pending}"
    );
    assert_code(
        &app.login(&email, "not the password").await,
        "INVALID_CREDENTIALS",
    );
    // Reset and verification requests mail nothing meanwhile.
    data(&app.request_reset(&email).await, "requestPasswordReset");
    data(
        &app.graphql(RESEND, json!({ "e": email })).await,
        "resendVerificationEmail",
    );
    let token = cancel_token(&app, &email, 1).await;
    app.settle().await;
    assert!(
        !app.mail.to(&email).iter().any(ReceivedMail::is_reset),
        "no reset mail"
    );
    assert_eq!(app.mail.verifications(&email).len(), 1, "only register's");

    // The mailed token keeps the account, once; it does not sign in.
    assert_eq!(
        data(&cancel(&app, &token).await, "cancelAccountDeletion"),
        true
    );
    assert_code(&cancel(&app, &token).await, "INVALID_TOKEN");
    assert_code(&cancel(&app, "not-a-token").await, "INVALID_TOKEN");
    let back = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    data(&app.me(Some(&back.access)).await, "me");
    let events = app.audit_events().await;
    for event in ["account_deletion_requested", "account_deletion_cancelled"] {
        assert!(events.iter().any(|(e, ..)| e == event), "{event}");
    }

    // Asked again, and left to run out: the purge job deletes the account.
    data(
        &request_deletion(&app, &back.access, "DELETE").await,
        "requestAccountDeletion",
    );
    let second = cancel_token(&app, &email, 2).await;
    app.advance(13 * 86_400);
    // Real time passes for the purge job (every second) to run with the account not
    // yet due.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count(&app, "users").await, "1", "not yet due");
    app.advance(86_400 + 1);
    eventually(Duration::from_secs(10), "the account purged", || async {
        let left = count(&app, "users").await;
        if left == "0" {
            Ok(())
        } else {
            Err(format!("{left} user(s) left"))
        }
    })
    .await;
    eventually(Duration::from_secs(10), "the last mail", || async {
        app.mail.to(&email).into_iter().find(is_deleted_notice)
    })
    .await;
    assert_code(&cancel(&app, &second).await, "INVALID_TOKEN");
    assert_code(&app.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");
    assert_eq!(count(&app, "sessions").await, "0");
    assert_eq!(count(&app, "account_tokens").await, "0");
    app.settle().await;
    assert_eq!(
        count(&app, "audit_events WHERE user_id IS NOT NULL").await,
        "0"
    );
}

#[tokio::test]
async fn a_deletion_needs_the_word_and_a_fresh_session() {
    let app = spawn_app().await;
    app.freeze_clock();
    let email = unique_email();
    let session = app.signed_up(&email).await;

    let body = request_deletion(&app, &session.access, "delete").await;
    assert!(fields(&body).contains_key("confirm"), "{body}");
    assert_code(
        &request_deletion(&app, "not-a-token", "DELETE").await,
        "UNAUTHENTICATED",
    );

    // Past REAUTH_MAX_AGE (300 s by default): a credential must be proved again.
    app.advance(301);
    for body in [
        request_deletion(&app, &session.access, "DELETE").await,
        my_data(&app, &session.access).await,
    ] {
        assert_code(&body, "REAUTHENTICATION_REQUIRED");
        assert_eq!(body["errors"][0]["extensions"]["maxAgeSeconds"], 300);
    }
    data(&app.me(Some(&session.access)).await, "me");
    let body = app
        .graphql_as(
            REAUTHENTICATE,
            json!({ "i": { "password": PASSWORD } }),
            Some(&session.access),
        )
        .await;
    let fresh = data(&body, "reauthenticate")["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    data(&my_data(&app, &fresh).await, "myData");
    data(
        &request_deletion(&app, &fresh, "DELETE").await,
        "requestAccountDeletion",
    );
    assert_code(&app.me(Some(&fresh)).await, "UNAUTHENTICATED");
}

/// Every key and string value in `value`, with its path.
fn walk(value: &Value, path: &str, out: &mut Vec<(String, Option<String>, Option<String>)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let at = format!("{path}.{key}");
                out.push((at.clone(), Some(key.clone()), None));
                walk(v, &at, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &format!("{path}[{i}]"), out);
            }
        }
        Value::String(s) => out.push((path.to_owned(), None, Some(s.clone()))),
        _ => {}
    }
}

#[tokio::test]
async fn my_data_gives_the_owner_their_data_and_never_a_secret() {
    let app = spawn_app().await;
    app.freeze_clock();
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let other = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    app.settle().await;
    let hash = app
        .sql_string(&format!(
            "SELECT password_hash FROM users WHERE email = '{email}'"
        ))
        .await
        .remove(0);

    let body = my_data(&app, &session.access).await;
    let export = data(&body, "myData");
    let profile = &export["profile"];
    assert_eq!(profile["id"], session.user_id.as_str(), "{export}");
    assert_eq!(profile["email"], email.as_str());
    assert_eq!(profile["fullName"], "Ada Lovelace");
    assert_eq!(profile["emailVerified"], false);
    assert!(profile["dateJoined"].is_string() && profile["lastLogin"].is_string());
    let sessions = export["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{export}");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["id"], claims_of(&session.access)["sid"]);
    assert_eq!(sessions[1]["id"], claims_of(&other.access)["sid"]);
    for key in [
        "createdAt",
        "lastUsedAt",
        "expiresAt",
        "ipAddress",
        "aal",
        "authMethods",
    ] {
        assert!(sessions[0].get(key).is_some(), "{key} in {}", sessions[0]);
    }
    assert_eq!(export["identities"], json!([]));
    assert_eq!(export["passkeys"], json!([]));
    assert_eq!(
        export["mfa"],
        json!({ "totpEnabled": false, "passkeyCount": 0, "recoveryCodesRemaining": 0 })
    );
    let events = export["auditEvents"].as_array().unwrap();
    for event in ["registered", "login_succeeded"] {
        let found = events
            .iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("{event} in {events:?}"));
        assert_eq!(found["ipAddress"], "127.0.0.1");
        assert_eq!(found["occurrences"], 1);
        assert!(found["occurredAt"].is_string());
    }

    let mut seen = Vec::new();
    walk(export, "myData", &mut seen);
    for (path, key, text) in seen {
        if let Some(key) = key {
            let key = key.to_lowercase();
            for word in ["hash", "secret", "token", "password"] {
                assert!(!key.contains(word), "{path}: a key named like a secret");
            }
            // A key (`privateKey`, `apiKey`); `passkeys` are listed by name and date.
            assert!(!key.ends_with("key"), "{path}: a key named like a secret");
        }
        if let Some(text) = text {
            for secret in [
                hash.as_str(),
                session.refresh.as_str(),
                session.access.as_str(),
                other.refresh.as_str(),
                other.access.as_str(),
                PASSWORD,
            ] {
                assert!(!text.contains(secret), "{path} carries a secret: {text}");
            }
            assert!(!text.starts_with("$argon2"), "{path}: {text}");
        }
    }

    // Five a day, each mailed to the owner and audited; the sixth is refused.
    for _ in 1..5 {
        data(&my_data(&app, &session.access).await, "myData");
    }
    let refused = my_data(&app, &session.access).await;
    let wait = retry_after(&refused);
    assert!(wait > 0 && wait <= 86_400, "{refused}");
    let notices = app.mail.wait_for(&email, 5).await;
    assert_eq!(notices.len(), 5);
    assert!(
        notices
            .iter()
            .all(|m| m.subject().contains("data was exported"))
    );
    let exports = app
        .audit_events()
        .await
        .into_iter()
        .filter(|(e, user, _)| e == "data_exported" && user.as_deref() == Some(&session.user_id))
        .count();
    assert_eq!(exports, 5);
    // A new day, a new allowance (a new session: the old one is no longer fresh).
    app.advance(wait);
    let later = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    data(&my_data(&app, &later.access).await, "myData");
}

#[tokio::test]
async fn two_instances_purging_at_once_delete_an_account_once() {
    let overrides = [
        ("RETENTION_INTERVAL", "1"),
        ("ACCOUNT_DELETION_GRACE", "60"),
    ];
    let a = spawn_app_with(&overrides).await;
    let b = a.sibling(&overrides).await;
    let emails: Vec<String> = (0..3).map(|_| unique_email()).collect();
    for email in &emails {
        let session = a.signed_up(email).await;
        data(
            &request_deletion(&a, &session.access, "DELETE").await,
            "requestAccountDeletion",
        );
    }
    for email in &emails {
        a.mail.wait_for(email, 1).await;
    }
    // Both instances find the accounts due, and purge them, every second.
    a.advance(61);
    b.advance(61);
    eventually(Duration::from_secs(10), "the accounts purged", || async {
        let left = count(&a, "users").await;
        if left == "0" {
            Ok(())
        } else {
            Err(format!("{left} user(s) left"))
        }
    })
    .await;
    for email in &emails {
        a.mail.wait_for(email, 2).await;
    }
    a.settle().await;
    b.settle().await;
    for email in &emails {
        let last = a
            .mail
            .to(email)
            .into_iter()
            .filter(is_deleted_notice)
            .count();
        assert_eq!(last, 1, "one last mail to {email}");
    }
    let deleted = sample(&a.metrics().await, "identity_accounts_deleted_total")
        + sample(&b.metrics().await, "identity_accounts_deleted_total");
    assert_eq!(deleted, 3.0);
    assert_eq!(
        count(&a, "audit_events WHERE event = 'account_deleted'").await,
        "3"
    );
}

//! Sessions and devices: `mySessions` lists the caller's live sessions with their
//! device, `revokeSession` and `revokeOtherSessions` end them at once, everywhere.

use serde_json::{Value, json};

use crate::support::*;

const MY_SESSIONS: &str = "{ mySessions { id current createdAt lastUsedAt expiresAt \
     ipAddress userAgent browser os aal authMethods } }";
const REVOKE: &str = "mutation($id: ID!) { revokeSession(id: $id) }";
const REVOKE_OTHERS: &str = "mutation { revokeOtherSessions }";

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const SAFARI: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
     (KHTML, like Gecko) Version/18.1 Safari/605.1.15";

/// Behind the local proxy, so that a test can choose the client address.
const PROXIED: (&str, &str) = ("TRUSTED_PROXIES", "127.0.0.1/32");

async fn post_with(
    app: &TestApp,
    query: &str,
    variables: Value,
    headers: &[(&str, &str)],
) -> Value {
    let body = json!({ "query": query, "variables": variables });
    let resp = app.post_raw(&body, headers).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn login_with(app: &TestApp, email: &str, headers: &[(&str, &str)]) -> Session {
    let body = post_with(
        app,
        &format!("mutation($i: LoginInput!) {{ login(input: $i) {{ {PAYLOAD} }} }}"),
        json!({ "i": { "email": email, "password": PASSWORD } }),
        headers,
    )
    .await;
    Session::from_payload(data(&body, "login"))
}

async fn my_sessions(app: &TestApp, access: &str) -> Vec<Value> {
    let body = app.graphql_as(MY_SESSIONS, json!({}), Some(access)).await;
    data(&body, "mySessions").as_array().unwrap().clone()
}

async fn revoke(app: &TestApp, access: &str, id: &str) -> Value {
    app.graphql_as(REVOKE, json!({ "id": id }), Some(access))
        .await
}

fn sid(session: &Session) -> String {
    claims_of(&session.access)["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn three_logins_are_listed_with_their_devices_and_the_current_first() {
    let app = spawn_app().await;
    app.freeze_clock();
    let email = unique_email();
    app.register(&email).await;
    let mut logins = Vec::new();
    for agent in [FIREFOX, CHROME, SAFARI] {
        app.advance(10);
        logins.push(login_with(&app, &email, &[("user-agent", agent)]).await);
    }
    // The second asks: it comes first, then the others by last use (newest first).
    let list = my_sessions(&app, &logins[1].access).await;
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(list.len(), 4, "three logins and the registration: {list:?}");
    assert_eq!(
        &ids[..3],
        [sid(&logins[1]), sid(&logins[2]), sid(&logins[0])],
        "{list:?}"
    );
    let current: Vec<bool> = list
        .iter()
        .map(|s| s["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current.iter().filter(|c| **c).count(), 1);
    assert!(current[0]);
    let device = |s: &Value| {
        (
            s["userAgent"].as_str().unwrap().to_owned(),
            s["browser"].as_str().map(str::to_owned),
            s["os"].as_str().map(str::to_owned),
        )
    };
    assert_eq!(
        device(&list[0]),
        (
            CHROME.into(),
            Some("Chrome".into()),
            Some("Windows 10".into())
        )
    );
    assert_eq!(
        device(&list[1]),
        (SAFARI.into(), Some("Safari".into()), Some("Mac OSX".into()))
    );
    assert_eq!(
        device(&list[2]),
        (FIREFOX.into(), Some("Firefox".into()), Some("Linux".into()))
    );
    for s in &list[..3] {
        assert_eq!(s["ipAddress"], "127.0.0.1", "{s}");
        assert_eq!(s["aal"], "aal1");
        assert_eq!(s["authMethods"], json!(["pwd"]));
        assert_eq!(s["createdAt"], s["lastUsedAt"]);
        assert!(s["expiresAt"].as_str().unwrap() > s["createdAt"].as_str().unwrap());
    }
    // Never a token or a hash.
    let text = serde_json::to_string(&list).unwrap();
    for login in &logins {
        assert!(!text.contains(&login.refresh) && !text.contains(&login.access));
    }

    assert_code(
        &app.graphql_as(MY_SESSIONS, json!({}), None).await,
        "UNAUTHENTICATED",
    );
}

#[tokio::test]
async fn revoke_session_ends_another_session_and_ignores_foreign_or_unknown_ids() {
    let app = spawn_app().await;
    let (email, other_email) = (unique_email(), unique_email());
    let mine = app.signed_up(&email).await;
    let second = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    let theirs = app.signed_up(&other_email).await;

    // Another user's session, an unknown id, a malformed one: true, and nothing happens.
    for id in [
        sid(&theirs),
        uuid::Uuid::now_v7().to_string(),
        "nope".to_owned(),
    ] {
        assert_eq!(
            data(&revoke(&app, &mine.access, &id).await, "revokeSession"),
            true
        );
    }
    data(&app.me(Some(&theirs.access)).await, "me");
    assert_eq!(my_sessions(&app, &theirs.access).await.len(), 1);
    data(&app.refresh(&theirs.refresh).await, "refreshToken");
    assert_eq!(my_sessions(&app, &mine.access).await.len(), 2);
    assert!(
        !app.audit_events()
            .await
            .iter()
            .any(|(event, ..)| event == "session_revoked"),
        "nothing was revoked"
    );

    // Mine: its access and refresh tokens die at once; the caller's session lives on.
    assert_eq!(
        data(
            &revoke(&app, &mine.access, &sid(&second)).await,
            "revokeSession"
        ),
        true
    );
    assert_code(&app.me(Some(&second.access)).await, "UNAUTHENTICATED");
    assert_code(&app.refresh(&second.refresh).await, "INVALID_TOKEN");
    data(&app.me(Some(&mine.access)).await, "me");
    let list = my_sessions(&app, &mine.access).await;
    assert_eq!(list.len(), 1, "revoked sessions are not listed: {list:?}");
    assert_eq!(list[0]["id"], sid(&mine));
    let user_id = claims_of(&mine.access)["sub"].as_str().unwrap().to_owned();
    assert!(
        app.audit_events()
            .await
            .iter()
            .any(|(event, user, _)| event == "session_revoked" && user.as_deref() == Some(&user_id))
    );
    // Again: already ended, still true.
    assert_eq!(
        data(
            &revoke(&app, &mine.access, &sid(&second)).await,
            "revokeSession"
        ),
        true
    );
    assert_code(
        &revoke(&app, &second.access, &sid(&mine)).await,
        "UNAUTHENTICATED",
    );
}

#[tokio::test]
async fn revoke_other_sessions_ends_all_but_the_callers() {
    let app = spawn_app().await;
    let email = unique_email();
    let mine = app.signed_up(&email).await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(Session::from_payload(data(
            &app.login(&email, PASSWORD).await,
            "login",
        )));
    }
    let stranger = app.signed_up(&unique_email()).await;

    let body = app
        .graphql_as(REVOKE_OTHERS, json!({}), Some(&mine.access))
        .await;
    assert_eq!(data(&body, "revokeOtherSessions"), 3);
    for other in &others {
        assert_code(&app.me(Some(&other.access)).await, "UNAUTHENTICATED");
        assert_code(&app.refresh(&other.refresh).await, "INVALID_TOKEN");
    }
    data(&app.me(Some(&mine.access)).await, "me");
    let refreshed = Session::from_payload(data(&app.refresh(&mine.refresh).await, "refreshToken"));
    data(&app.me(Some(&refreshed.access)).await, "me");
    data(&app.me(Some(&stranger.access)).await, "me");
    assert_eq!(my_sessions(&app, &refreshed.access).await.len(), 1);

    // Nothing left to end.
    let body = app
        .graphql_as(REVOKE_OTHERS, json!({}), Some(&refreshed.access))
        .await;
    assert_eq!(data(&body, "revokeOtherSessions"), 0);
    let events: Vec<String> = app
        .audit_events()
        .await
        .into_iter()
        .map(|(event, ..)| event)
        .filter(|event| event == "other_sessions_revoked")
        .collect();
    assert_eq!(
        events.len(),
        1,
        "one audit event, for the call that ended some"
    );
    assert_code(
        &app.graphql_as(REVOKE_OTHERS, json!({}), None).await,
        "UNAUTHENTICATED",
    );
}

#[tokio::test]
async fn the_last_ip_is_recorded_at_refresh() {
    let app = spawn_app_with(&[PROXIED]).await;
    app.freeze_clock();
    let email = unique_email();
    app.register(&email).await;
    let session = login_with(&app, &email, &[("x-forwarded-for", "198.51.100.7")]).await;
    let list = my_sessions(&app, &session.access).await;
    let this = list.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(this["ipAddress"], "198.51.100.7");

    app.advance(30);
    let body = post_with(
        &app,
        &format!("mutation($t: String!) {{ refreshToken(refreshToken: $t) {{ {PAYLOAD} }} }}"),
        json!({ "t": session.refresh }),
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    let refreshed = Session::from_payload(data(&body, "refreshToken"));
    let list = my_sessions(&app, &refreshed.access).await;
    let this = list.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(this["ipAddress"], "203.0.113.9");
    assert_ne!(this["lastUsedAt"], this["createdAt"]);
}

#[tokio::test]
async fn expired_and_idle_sessions_are_not_listed() {
    let app = spawn_app_with(&[("REFRESH_TOKEN_TTL", "3600"), ("REFRESH_IDLE_TTL", "600")]).await;
    app.freeze_clock();
    let email = unique_email();
    let idle = app.signed_up(&email).await;
    app.advance(601);
    let session = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    let list = my_sessions(&app, &session.access).await;
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sid(&session)], "the idle one is gone");
    assert_code(&app.refresh(&idle.refresh).await, "INVALID_TOKEN");

    // Kept alive by refreshes, but not past its absolute expiry.
    let mut latest = session.clone();
    for _ in 0..6 {
        app.advance(590);
        let body = app.refresh(&latest.refresh).await;
        latest = Session::from_payload(data(&body, "refreshToken"));
    }
    assert_eq!(my_sessions(&app, &latest.access).await.len(), 1);
    app.advance(100);
    let other = Session::from_payload(data(&app.login(&email, PASSWORD).await, "login"));
    let list = my_sessions(&app, &other.access).await;
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sid(&other)], "the expired one is gone");
}

#[tokio::test]
async fn a_long_user_agent_is_stored_cut_to_512_characters() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email).await;
    let agent = format!("{FIREFOX} {}", "x".repeat(600));
    let session = login_with(&app, &email, &[("user-agent", &agent)]).await;
    let list = my_sessions(&app, &session.access).await;
    let this = list.iter().find(|s| s["current"] == true).unwrap();
    let shown = this["userAgent"].as_str().unwrap();
    assert_eq!(shown.chars().count(), 512);
    assert!(agent.starts_with(shown));
    assert_eq!(this["browser"], "Firefox");
    let stored = app
        .sql_string("SELECT user_agent FROM sessions WHERE user_agent LIKE '%Firefox%'")
        .await;
    assert_eq!(stored, [shown]);
}

#[tokio::test]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn revoke_session_kills_its_access_token_at_once_on_another_instance() {
    require_postgres();
    let a = spawn_app().await;
    let b = a.sibling(&[]).await;
    let email = unique_email();
    let mine = a.signed_up(&email).await;
    let other = Session::from_payload(data(&a.login(&email, PASSWORD).await, "login"));
    let third = Session::from_payload(data(&a.login(&email, PASSWORD).await, "login"));
    b.wait_trusting().await;
    // B answers from memory: it knows of no revocation.
    data(&b.me(Some(&other.access)).await, "me");
    data(&b.me(Some(&third.access)).await, "me");

    assert_eq!(
        data(
            &revoke(&a, &mine.access, &sid(&other)).await,
            "revokeSession"
        ),
        true
    );
    assert_code(&b.me(Some(&other.access)).await, "UNAUTHENTICATED");
    assert_code(&b.refresh(&other.refresh).await, "INVALID_TOKEN");
    data(&b.me(Some(&third.access)).await, "me");

    let body = a
        .graphql_as(REVOKE_OTHERS, json!({}), Some(&mine.access))
        .await;
    assert_eq!(data(&body, "revokeOtherSessions"), 1);
    assert_code(&b.me(Some(&third.access)).await, "UNAUTHENTICATED");
    data(&b.me(Some(&mine.access)).await, "me");
}

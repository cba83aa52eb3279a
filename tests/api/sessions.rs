//! Sessions: a revocation holds at once, on every instance, and is kept as long as the
//! tokens it stops; deactivation ends every session; an idle session ends.

use crate::support::*;

#[tokio::test]
async fn revocation_is_read_from_the_revocation_set_and_expires_with_the_tokens() {
    let app = spawn_app_with(&[("ACCESS_TOKEN_TTL", "300")]).await;
    let session = app.signed_up(&unique_email()).await;
    data(&app.logout(&session.refresh).await, "logout");
    // Undo the revocation in the database: the access token is still refused, because
    // `me` asks the revocation set, not the sessions table.
    app.sql("UPDATE sessions SET revoked_at = NULL, revoked_reason = NULL")
        .await;
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
    if backend() == Backend::Postgres {
        let prefix = &app.storage.vars["REDIS_KEY_PREFIX"];
        let sid = claims_of(&session.access)["sid"]
            .as_str()
            .unwrap()
            .to_owned();
        let ttl: i64 = shared_redis_cli(&["PTTL", &format!("{prefix}revoked:sid:{sid}")])
            .parse()
            .unwrap();
        // Kept as long as an access token can live (TTL + leeway), no longer.
        assert!(ttl > 0 && ttl <= 305_000, "PTTL {ttl}");
    }
    // Once every access token of the session has expired anyway, the entry is not needed.
    app.advance(306);
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_deactivated_account_loses_its_sessions_at_once() {
    let app = spawn_app().await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_identity"));
    cmd.arg("deactivate-user")
        .arg(email.to_uppercase())
        .env_clear();
    for (k, v) in &app.storage.vars {
        cmd.env(k, v);
    }
    cmd.env("SECRET_KEY", SECRET).env("RUN_MIGRATIONS", "false");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
    assert_code(&app.refresh(&session.refresh).await, "INVALID_TOKEN");
    assert_code(&app.login(&email, PASSWORD).await, "INVALID_CREDENTIALS");
    let revoked = app.sql_string("SELECT revoked_reason FROM sessions").await;
    assert_eq!(revoked, ["deactivated"]);
}

#[tokio::test]
async fn sessions_end_when_left_idle() {
    let app = spawn_app_with(&[("REFRESH_IDLE_TTL", "60"), ("REFRESH_TOKEN_TTL", "3600")]).await;
    let mut session = app.signed_up(&unique_email()).await;
    for _ in 0..3 {
        app.advance(50);
        session = Session::from_payload(data(&app.refresh(&session.refresh).await, "refreshToken"));
    }
    app.advance(61);
    assert_code(&app.refresh(&session.refresh).await, "INVALID_TOKEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL + Redis only: run with TEST_BACKEND=postgres cargo test -- --include-ignored"]
async fn a_revocation_on_one_instance_holds_on_another_at_once() {
    // Instances share revocations through Redis; the embedded default is one instance.
    require_postgres();
    let a = spawn_app().await;
    let b = a.sibling(&[]).await;
    let email = unique_email();
    let session = a.signed_up(&email).await;
    b.wait_trusting().await;
    // B answers from memory now: it has the profile and knows of no revocation.
    data(&b.me(Some(&session.access)).await, "me");
    data(&b.me(Some(&session.access)).await, "me");
    data(&a.logout(&session.refresh).await, "logout");
    assert_code(&b.me(Some(&session.access)).await, "UNAUTHENTICATED");

    // A login on A moves lastLogin on B's copy of the profile at once, without B
    // reading it again.
    let reads = || async { sample(&b.metrics().await, "identity_profile_database_reads_total") };
    let before = reads().await;
    let login = a.login(&email, PASSWORD).await;
    let login = data(&login, "login");
    let other = Session::from_payload(login);
    let seen_by_b = data(&b.me(Some(&other.access)).await, "me")["lastLogin"].clone();
    let seen_by_a = data(&a.me(Some(&other.access)).await, "me")["lastLogin"].clone();
    assert!(seen_by_b.is_string());
    assert_eq!(seen_by_b, login["user"]["lastLogin"]);
    assert_eq!(seen_by_b, seen_by_a);
    assert_eq!(reads().await, before, "B kept its copy");
}

#[tokio::test]
async fn a_new_session_beyond_the_bound_ends_the_oldest() {
    let app = spawn_app_with(&[("MAX_SESSIONS_PER_USER", "3")]).await;
    let email = unique_email();
    let mut sessions = vec![app.signed_up(&email).await];
    for _ in 0..3 {
        app.advance(1);
        sessions.push(Session::from_payload(data(
            &app.login(&email, PASSWORD).await,
            "login",
        )));
    }
    let oldest = &sessions[0];
    assert_code(&app.refresh(&oldest.refresh).await, "INVALID_TOKEN");
    assert_code(&app.me(Some(&oldest.access)).await, "UNAUTHENTICATED");
    for live in &sessions[1..] {
        data(&app.me(Some(&live.access)).await, "me");
        data(&app.refresh(&live.refresh).await, "refreshToken");
    }
    let reasons = app
        .sql_string("SELECT revoked_reason FROM sessions WHERE revoked_at IS NOT NULL")
        .await;
    assert_eq!(reasons, ["session_limit"]);
}

/// How many sessions are revoked (`"NOT"`) or live (`""`), as text.
async fn count_sessions(app: &TestApp, revoked: &str) -> String {
    app.sql_string(&format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM sessions WHERE revoked_at IS {revoked} NULL"
    ))
    .await
    .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_ends_any_number_of_sessions() {
    // More sessions than one statement can name (SQLite binds at most 32,766 values,
    // PostgreSQL 65,535): revoking them all must not list them.
    let app = spawn_app_with(&[("HTTP_REQUEST_TIMEOUT", "120")]).await;
    let email = unique_email();
    let session = app.signed_up(&email).await;
    let copies = if backend() == Backend::Postgres {
        "INSERT INTO sessions (id, user_id, created_at, expires_at, last_used_at) \
         SELECT gen_random_uuid(), user_id, created_at, expires_at, last_used_at \
         FROM sessions, generate_series(1, 70000)"
    } else {
        "INSERT INTO sessions (id, user_id, created_at, expires_at, last_used_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 70000) \
         SELECT randomblob(16), user_id, created_at, expires_at, last_used_at FROM sessions, n"
    };
    app.sql(copies).await;
    assert_eq!(count_sessions(&app, "").await, "70001");

    let token = app.reset_token_for(&email).await;
    let resp = app.reset_password(&token, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(data(&resp, "resetPassword"), true);
    assert_eq!(count_sessions(&app, "").await, "0");
    assert_eq!(count_sessions(&app, "NOT").await, "70001");
    assert_code(&app.refresh(&session.refresh).await, "INVALID_TOKEN");
    assert_code(&app.me(Some(&session.access)).await, "UNAUTHENTICATED");
}

//! The command line: `print-schema`, `check-config`, `migrate`, `healthcheck`, and a
//! bad setting stopping `serve`.

use std::process::Command;

use crate::support::*;

fn identity() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_identity"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

#[test]
fn print_schema_writes_the_committed_schema() {
    let out = identity().arg("print-schema").output().unwrap();
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

#[test]
fn a_bad_setting_stops_the_process_naming_the_variable() {
    let dir = tempdir();
    for (var, value) in [
        ("ACCESS_TOKEN_TTL", "fifteen minutes"),
        ("BIND_ADDR", "everywhere"),
        ("PASSWORD_RESET_URL", "https://app.example/reset"),
        ("SECRET_KEY", "too-short"),
    ] {
        let out = identity()
            .arg("serve")
            .env("DATA_DIR", &dir)
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
    let out = identity()
        .arg("serve")
        .env("APP_ENV", "production")
        .env("DATA_DIR", &dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SECRET_KEY"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_config_masks_secrets() {
    let out = identity()
        .arg("check-config")
        .env("SECRET_KEY", "a-very-secret-key-of-sufficient-length-0123")
        .env(
            "DATABASE_URL",
            "postgres://app:hunter2@db.internal/identity",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("DATABASE_URL=postgres://app:***@db.internal/identity"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("a-very-secret-key"),
        "{stdout}"
    );
}

#[tokio::test]
async fn migrate_applies_the_schema_then_serve_can_skip_it() {
    let app = spawn_app_with(&[]).await;
    // A second database, migrated by the CLI alone.
    let fresh = match backend() {
        Backend::Embedded => format!("sqlite://{}/cli.db?mode=rwc", tempdir()),
        Backend::Postgres => {
            // Reuse this test's database: migrations are idempotent.
            app.storage.vars["DATABASE_URL"].clone()
        }
    };
    let out = identity()
        .arg("migrate")
        .env("DATABASE_URL", &fresh)
        .env("SECRET_KEY", "a-very-secret-key-of-sufficient-length-0123")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = {
        let db = sea_orm::Database::connect(fresh.clone()).await.unwrap();
        use sea_orm::ConnectionTrait;
        let sql = match backend() {
            Backend::Embedded => "SELECT name FROM sqlite_master WHERE type = 'table'",
            Backend::Postgres => {
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'"
            }
        };
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect::<Vec<_>>()
    };
    for table in ["users", "sessions", "refresh_tokens"] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
    // A server told not to migrate starts on the migrated database and works.
    let sibling = start(
        std::sync::Arc::clone(&app.storage),
        app.mail.clone(),
        &[
            ("RUN_MIGRATIONS", "false"),
            ("DATABASE_URL", fresh.as_str()),
        ],
    )
    .await;
    sibling.signed_up(&unique_email()).await;
}

#[tokio::test]
async fn healthcheck_answers_for_the_running_service() {
    let app = spawn_app().await;
    let url = format!("{}/healthz", app.url);
    let ok = tokio::task::spawn_blocking(move || {
        identity()
            .args(["healthcheck", "--url", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dead = closed_port();
    let out = identity()
        .arg("healthcheck")
        .env("BIND_ADDR", dead.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// An address on which nothing listens.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

#[tokio::test]
async fn healthcheck_ignores_proxy_variables() {
    // Docker passes the user's proxy settings into containers; the health check asks
    // the service on this machine, never a proxy (here one that is down).
    let app = spawn_app().await;
    let bind = app.url.trim_start_matches("http://").to_owned();
    let proxy = format!("http://{}", closed_port());
    let out = tokio::task::spawn_blocking(move || {
        identity()
            .arg("healthcheck")
            .env("BIND_ADDR", &bind)
            .env("HTTP_PROXY", &proxy)
            .env("http_proxy", &proxy)
            .env("ALL_PROXY", &proxy)
            .env("NO_PROXY", "")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

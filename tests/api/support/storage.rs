//! Where one test keeps its data: a fresh PostgreSQL database and its own Redis key
//! prefix with `TEST_BACKEND=postgres` (`TEST_DATABASE_URL`, `TEST_REDIS_URL`), a
//! SQLite file otherwise (the embedded default: SQLite + in-process store).

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Embedded,
    Postgres,
}

pub(crate) fn backend() -> Backend {
    match std::env::var("TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        _ => Backend::Embedded,
    }
}

/// The guard of a test that needs PostgreSQL + Redis. Such a test is also marked
/// `#[ignore = "PostgreSQL + Redis only: …"]`, so the embedded run reports it ignored
/// rather than passed; run there anyway (`--include-ignored`), it fails here.
pub(crate) fn require_postgres() {
    assert!(
        backend() == Backend::Postgres,
        "this test needs TEST_BACKEND=postgres (PostgreSQL + Redis); \
         on the embedded backend it is ignored, not run"
    );
}

fn pg_base() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `redis-cli args…` against the Redis under test (`TEST_REDIS_URL`): on a cluster it
/// follows redirections (`-c`), on Sentinel it asks the sentinel for the primary first.
/// Its output, trimmed.
pub(crate) fn shared_redis_cli(args: &[&str]) -> String {
    let url = redis_url();
    let (scheme, rest) = url.split_once("://").expect("TEST_REDIS_URL is a URL");
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let first = authority.rsplit('@').next().unwrap_or_default();
    let first = first.split(',').next().unwrap_or_default();
    let (host, port) = first.rsplit_once(':').unwrap_or((first, "6379"));
    let run = |target: &[&str], args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(target)
            .args(args)
            .output()
            .expect("redis-cli on PATH");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    match scheme {
        "redis-cluster" => run(&["-c", "-h", host, "-p", port], args),
        "redis-sentinel" => {
            let service = rest
                .split_once("sentinelServiceName=")
                .map(|(_, name)| name.split('&').next().unwrap_or_default())
                .expect("sentinelServiceName in TEST_REDIS_URL");
            let primary = run(
                &["-h", host, "-p", port],
                &["sentinel", "get-master-addr-by-name", service],
            );
            let mut lines = primary.lines();
            let (host, port) = (lines.next().unwrap(), lines.next().unwrap());
            run(&["-h", host, "-p", port], args)
        }
        _ => run(&["-h", host, "-p", port], args),
    }
}

/// Where one test keeps its data; shared by every server the test starts.
pub(crate) struct Storage {
    pub vars: HashMap<String, String>,
    pg_db: Option<String>,
    pub dir: PathBuf,
}

impl Storage {
    pub(crate) async fn new() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("identity-test-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut vars = HashMap::new();
        let mut pg_db = None;
        match backend() {
            Backend::Postgres => {
                let name = format!("test_{id}");
                let admin = Database::connect(format!("{}/postgres", pg_base()))
                    .await
                    .expect("PostgreSQL reachable (TEST_DATABASE_URL)");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                vars.insert("DATABASE_URL".into(), format!("{}/{name}", pg_base()));
                vars.insert("REDIS_URL".into(), redis_url());
                vars.insert("REDIS_KEY_PREFIX".into(), format!("test:{id}:"));
                pg_db = Some(name);
            }
            Backend::Embedded => {
                let file = dir.join("identity.db");
                vars.insert(
                    "DATABASE_URL".into(),
                    format!("sqlite://{}?mode=rwc", file.display()),
                );
            }
        }
        Self { vars, pg_db, dir }
    }
}

/// Storage of the embedded default in `dir`, whatever the backend under test.
pub(crate) fn embedded_storage(dir: &str) -> Arc<Storage> {
    let file = std::path::Path::new(dir).join("identity.db");
    let mut vars = HashMap::new();
    vars.insert(
        "DATABASE_URL".into(),
        format!("sqlite://{}?mode=rwc", file.display()),
    );
    Arc::new(Storage {
        vars,
        pg_db: None,
        dir: dir.into(),
    })
}

/// A new empty directory under the system's temporary directory.
pub(crate) fn tempdir() -> String {
    let dir = std::env::temp_dir().join(format!("identity-cli-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}

impl Drop for Storage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(name) = self.pg_db.take() {
            // Best effort, on a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(format!("{}/postgres", pg_base())).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
                Ok::<(), std::io::Error>(())
            })
            .join();
        }
    }
}

//! What the black-box tests share. `TEST_BACKEND=postgres` selects PostgreSQL + Redis
//! (`TEST_DATABASE_URL`, `TEST_REDIS_URL`); anything else the embedded default (SQLite
//! + in-process store). `TEST_LOG=1` prints the in-process servers' logs.
//!
//! - `app`: `spawn_app*`, `start`, `TestApp` and the GraphQL calls a client makes
//! - `storage`: each test's own database / Redis key prefix; the backend under test
//! - `mail_sink`: a real SMTP server that keeps what it receives
//! - `oidc`: a real OpenID provider (npm oauth2-mock-server) and a GitHub stub
//! - `servers`: private Redis / PostgreSQL servers that fault tests stop and start
//! - `process`: the service binary as a child process
//! - `nginx`: Debian's nginx on loopback with deploy/nginx.conf, in front of processes
//! - `proxy`: a TCP proxy that adds latency (a slow Redis)
//! - `assert`: reading responses (`data`, `code`, `assert_code`, `fields`, …)
//! - `jwt`: reading and making tokens
//! - `wait`: `eventually`, instead of sleeping

pub(crate) mod app;
pub(crate) mod assert;
pub(crate) mod jwt;
pub(crate) mod mail_sink;
pub(crate) mod nginx;
pub(crate) mod oidc;
pub(crate) mod process;
pub(crate) mod proxy;
pub(crate) mod servers;
pub(crate) mod storage;
pub(crate) mod wait;

pub(crate) use app::*;
pub(crate) use assert::*;
pub(crate) use jwt::*;
pub(crate) use mail_sink::*;
pub(crate) use nginx::*;
pub(crate) use oidc::*;
pub(crate) use process::*;
pub(crate) use proxy::*;
pub(crate) use servers::*;
pub(crate) use storage::*;
pub(crate) use wait::*;

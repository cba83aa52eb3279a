//! Black-box tests: the real service on a random port, spoken to over HTTP as a client
//! would. Run against the embedded default, or PostgreSQL + Redis with
//! `TEST_BACKEND=postgres` and `--include-ignored` (tests that need PostgreSQL + Redis
//! are ignored on the embedded run). One subject a file; what they share is in
//! `support`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access_tokens;
mod account_deletion;
mod assurance;
mod audit;
mod behind_nginx;
mod brute_force;
mod cli;
mod cookie_mode;
mod credential_races;
mod deployment;
mod devices;
mod email_change;
mod email_verification;
mod faults;
mod harness;
mod http;
mod ip_limits;
mod lifecycle;
mod login;
mod logout;
mod logs;
mod me;
mod metrics;
mod outbox;
mod passkeys;
mod password_change;
mod password_reset;
mod passwords;
mod persisted;
mod redis_failover;
mod refresh;
mod register;
mod retention;
mod revocation_faults;
mod schema;
mod sessions;
mod slow_dependencies;
mod social;
mod support;
mod surface;
mod totp;

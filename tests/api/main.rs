//! Black-box tests: the real service on a random port, spoken to over HTTP as a client
//! would. Run against the embedded default, or PostgreSQL + Redis with
//! `TEST_BACKEND=postgres`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod brute_force;
mod cli;
mod faults;
mod harness;
mod http;
mod login;
mod logout;
mod me;
mod ops;
mod password_reset;
mod passwords;
mod refresh;
mod register;
mod schema;
mod support;
mod surface;
mod tokens;

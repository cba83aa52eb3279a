//! Persistence: the relational database (SeaORM, PostgreSQL or SQLite): one module of
//! plain functions per table; and the ephemeral stores (reset tokens, revocations,
//! counters) on Redis or in process.

pub mod account_tokens;
pub mod audit;
pub mod db;
pub mod entity;
pub mod ephemeral;
pub mod identities;
pub mod outbox;
pub mod passkeys;
pub mod second_factors;
pub mod sessions;
pub mod users;

//! Persistence: the relational database (SeaORM, PostgreSQL or SQLite) and the token
//! store (Redis or in-process).

pub mod audit;
pub mod db;
pub mod entity;
pub mod outbox;
pub mod sessions;
pub mod token_store;
pub mod users;

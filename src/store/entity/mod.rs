//! SeaORM models. They stay inside `store`: services see `domain` types.

pub mod account_token;
pub mod audit_event;
pub mod outbox;
pub mod passkey;
pub mod recovery_code;
pub mod refresh_token;
pub mod session;
pub mod user;
pub mod user_identity;
pub mod user_totp;

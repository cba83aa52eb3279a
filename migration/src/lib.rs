//! Schema migrations for the identity service, applied on PostgreSQL and SQLite alike.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_users;
mod m20261124_000002_create_sessions;
mod m20261124_000003_create_audit_events;
mod m20261124_000004_create_outbox;
mod m20261124_000005_claim_and_retention_indexes;
mod m20261201_000001_sessions_revoked_at_index;
mod m20261207_000001_audit_occurrences;
mod m20261207_000002_session_assurance;
mod m20261207_000003_session_device;
mod m20261207_000004_email_verification;
mod m20261207_000005_email_change;
mod m20261207_000006_account_deletion;
mod m20261207_000007_totp;
mod m20261207_000008_passkeys;
mod m20261207_000009_identities;
mod m20261207_000010_sessions_live_index;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_users::Migration),
            Box::new(m20261124_000002_create_sessions::Migration),
            Box::new(m20261124_000003_create_audit_events::Migration),
            Box::new(m20261124_000004_create_outbox::Migration),
            Box::new(m20261124_000005_claim_and_retention_indexes::Migration),
            Box::new(m20261201_000001_sessions_revoked_at_index::Migration),
            Box::new(m20261207_000001_audit_occurrences::Migration),
            Box::new(m20261207_000002_session_assurance::Migration),
            Box::new(m20261207_000003_session_device::Migration),
            Box::new(m20261207_000004_email_verification::Migration),
            Box::new(m20261207_000005_email_change::Migration),
            Box::new(m20261207_000006_account_deletion::Migration),
            Box::new(m20261207_000007_totp::Migration),
            Box::new(m20261207_000008_passkeys::Migration),
            Box::new(m20261207_000009_identities::Migration),
            Box::new(m20261207_000010_sessions_live_index::Migration),
        ]
    }
}

use sea_orm_migration::{
    prelude::*,
    schema::{string_len_null, timestamp_with_time_zone_null},
};

/// Account deletion. `users.deletion_scheduled_for` is when a requested deletion is
/// due (null: none requested); the purge finds due accounts by it. Once an account is
/// purged, its audit rows keep `audit_events.user_hash` (a keyed hash of the user id)
/// in place of `user_id`, so the trail still groups one account's events without
/// naming it.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(timestamp_with_time_zone_null(Users::DeletionScheduledFor))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .add_column(string_len_null(AuditEvents::UserHash, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_deletion_scheduled_for")
                    .table(Users::Table)
                    .col(Users::DeletionScheduledFor)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_users_deletion_scheduled_for")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .drop_column(AuditEvents::UserHash)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::DeletionScheduledFor)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    DeletionScheduledFor,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    UserHash,
}

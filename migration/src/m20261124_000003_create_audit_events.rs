use sea_orm_migration::{prelude::*, schema::*};

/// Security events (logins, lockouts, reuse detection, resets, logouts). Never holds a
/// password or token. No foreign key to users: the trail outlives the account.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(pk_uuid(AuditEvents::Id))
                    .col(timestamp_with_time_zone(AuditEvents::OccurredAt))
                    .col(string_len(AuditEvents::Event, 64))
                    .col(uuid_null(AuditEvents::UserId))
                    .col(string_len_null(AuditEvents::Ip, 45))
                    .col(string_len_null(AuditEvents::UserAgent, 512))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_user_time")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::UserId)
                    .col(AuditEvents::OccurredAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_time")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OccurredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    OccurredAt,
    Event,
    UserId,
    Ip,
    UserAgent,
}

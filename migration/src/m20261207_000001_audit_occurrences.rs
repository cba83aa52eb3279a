use sea_orm_migration::{prelude::*, schema::integer};

/// Refusals an attacker can cause in volume (rate-limited, throttled, failed logins)
/// are stored a few rows per window and client, the rest as one row that says how
/// many it stands for: `occurrences`. Every earlier row stands for one.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .add_column(integer(AuditEvents::Occurrences).default(1))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .drop_column(AuditEvents::Occurrences)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Occurrences,
}

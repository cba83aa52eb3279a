use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(pk_uuid(Users::Id))
                    // Stored normalised (trimmed, lower-case); the unique index is what
                    // settles two registrations of one address racing each other.
                    .col(string_len_uniq(Users::Email, 254))
                    .col(string_len(Users::FullName, 150))
                    .col(string_len(Users::PasswordHash, 255))
                    .col(boolean(Users::IsActive).default(true))
                    .col(timestamp_with_time_zone(Users::DateJoined))
                    .col(timestamp_with_time_zone_null(Users::LastLogin))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub(crate) enum Users {
    Table,
    Id,
    Email,
    FullName,
    PasswordHash,
    IsActive,
    DateJoined,
    LastLogin,
}

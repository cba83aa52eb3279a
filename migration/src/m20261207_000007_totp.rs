use sea_orm_migration::{prelude::*, schema::*};

/// Second factors: a user's TOTP secret (sealed with AES-GCM under a key derived from
/// `SECRET_KEY`; the value names its key), the last step a code was accepted for (no
/// replay), the wrong codes in a row and the lock they lead to; and recovery codes,
/// stored as SHA-256 of their 80 random bits, each used once.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserTotp::Table)
                    .if_not_exists()
                    .col(pk_uuid(UserTotp::UserId))
                    .col(text(UserTotp::Secret))
                    .col(big_integer(UserTotp::LastStep))
                    .col(integer(UserTotp::Failures).default(0))
                    .col(timestamp_with_time_zone_null(UserTotp::LockedUntil))
                    .col(timestamp_with_time_zone(UserTotp::EnabledAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_totp_user")
                            .from(UserTotp::Table, UserTotp::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .if_not_exists()
                    .col(pk_uuid(RecoveryCodes::Id))
                    .col(uuid(RecoveryCodes::UserId))
                    .col(string_len(RecoveryCodes::CodeHash, 64))
                    .col(timestamp_with_time_zone(RecoveryCodes::CreatedAt))
                    .col(timestamp_with_time_zone_null(RecoveryCodes::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_recovery_codes_user")
                            .from(RecoveryCodes::Table, RecoveryCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recovery_codes_user_code")
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .col(RecoveryCodes::CodeHash)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RecoveryCodes::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(UserTotp::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum UserTotp {
    Table,
    UserId,
    Secret,
    LastStep,
    Failures,
    LockedUntil,
    EnabledAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    CreatedAt,
    UsedAt,
}

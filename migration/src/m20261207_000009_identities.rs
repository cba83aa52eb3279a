use sea_orm_migration::{prelude::*, schema::*};

/// Social login: the provider identities linked to an account. An identity is keyed by
/// (provider, subject) — never by email — and an account has at most one identity of
/// each provider. `email` is what the provider last said, for the owner to recognise
/// it; it is never used to find the account.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserIdentities::Table)
                    .if_not_exists()
                    .col(pk_uuid(UserIdentities::Id))
                    .col(uuid(UserIdentities::UserId))
                    .col(string_len(UserIdentities::Provider, 64))
                    .col(string_len(UserIdentities::Subject, 255))
                    .col(string_len_null(UserIdentities::Email, 320))
                    .col(timestamp_with_time_zone(UserIdentities::CreatedAt))
                    .col(timestamp_with_time_zone_null(UserIdentities::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_identities_user")
                            .from(UserIdentities::Table, UserIdentities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_identities_subject")
                    .table(UserIdentities::Table)
                    .col(UserIdentities::Provider)
                    .col(UserIdentities::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_identities_user_provider")
                    .table(UserIdentities::Table)
                    .col(UserIdentities::UserId)
                    .col(UserIdentities::Provider)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserIdentities::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum UserIdentities {
    Table,
    Id,
    UserId,
    Provider,
    Subject,
    Email,
    CreatedAt,
    LastUsedAt,
}

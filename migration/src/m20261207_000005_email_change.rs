use sea_orm_migration::{prelude::*, schema::*};

/// Change of email: a pending change is an `account_tokens` row of purpose
/// `change_email` whose `new_email` is the address its link confirms. The login
/// address stays in `users.email` until the link is used.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AccountTokens::Table)
                    .add_column(string_len_null(AccountTokens::NewEmail, 254))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AccountTokens::Table)
                    .drop_column(AccountTokens::NewEmail)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AccountTokens {
    Table,
    NewEmail,
}

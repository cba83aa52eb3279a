use sea_orm_migration::{
    prelude::*,
    schema::{string, timestamp_with_time_zone_null},
};

/// Sessions carry their assurance: `aal` (`aal1` | `aal2`), `amr` (how it was proved,
/// space-separated: `pwd`, `otp`, `mfa` …) and `auth_time` (when a credential was last
/// proved on it). Every session so far was started with a password, at its creation.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        add_column(manager, string(Sessions::Aal).default("aal1").to_owned()).await?;
        add_column(manager, string(Sessions::Amr).default("pwd").to_owned()).await?;
        add_column(manager, timestamp_with_time_zone_null(Sessions::AuthTime)).await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Sessions::Table)
                    .value(Sessions::AuthTime, Expr::col(Sessions::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Sessions::Aal, Sessions::Amr, Sessions::AuthTime] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

async fn add_column(manager: &SchemaManager<'_>, mut column: ColumnDef) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(Sessions::Table)
                .add_column(&mut column)
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    CreatedAt,
    Aal,
    Amr,
    AuthTime,
}

use sea_orm_migration::prelude::*;

/// After any gap in what it heard (a restart, a Redis outage or `FLUSHALL`), an
/// instance reads back the sessions revoked within the access-token lifetime. A partial
/// index over revoked rows keeps that a range read, however many sessions there are.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_revoked_at")
                    .table(Sessions::Table)
                    .col(Sessions::RevokedAt)
                    .and_where(Expr::col(Sessions::RevokedAt).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_sessions_revoked_at")
                    .table(Sessions::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    RevokedAt,
}

use sea_orm_migration::{prelude::*, schema::*};

/// Mail waiting to be delivered. Rows are written in the same transaction as the change
/// that causes them and sent by a background worker that claims them with a lease, so
/// several instances never send one row at the same time. Bodies may carry a reset
/// link: they are erased once the mail is sent or given up on.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(pk_uuid(Outbox::Id))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(string_len(Outbox::Kind, 32))
                    .col(string_len(Outbox::Recipient, 254))
                    .col(string_len(Outbox::Subject, 255))
                    .col(text_null(Outbox::TextBody))
                    .col(text_null(Outbox::HtmlBody))
                    .col(timestamp_with_time_zone_null(Outbox::NotAfter))
                    .col(integer(Outbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Outbox::LockedUntil))
                    .col(timestamp_with_time_zone_null(Outbox::SentAt))
                    .col(timestamp_with_time_zone_null(Outbox::FailedAt))
                    .col(string_len_null(Outbox::LastError, 255))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_pending")
                    .table(Outbox::Table)
                    .col(Outbox::SentAt)
                    .col(Outbox::FailedAt)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    CreatedAt,
    Kind,
    Recipient,
    Subject,
    TextBody,
    HtmlBody,
    NotAfter,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    SentAt,
    FailedAt,
    LastError,
}

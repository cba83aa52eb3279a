//! The outbox table: mail waiting for delivery.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, LockBehavior, LockType, Order, Query},
};
use uuid::Uuid;

use super::{
    db::{insert_in_chunks, padded_chunks},
    entity::outbox,
};
use crate::domain::mail::OutgoingMail;

/// A row claimed for delivery. Its bodies are as stored (sealed by the service).
pub struct Claimed {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub not_after: Option<DateTime<Utc>>,
    pub attempts: u32,
    /// When the claim ends: the row is ours until then, and this value proves it to
    /// the statements that renew or settle the claim.
    pub lease_end: DateTime<Utc>,
}

/// A mail to queue.
#[derive(Clone)]
pub struct NewMail {
    pub kind: &'static str,
    pub mail: OutgoingMail,
    /// Not to be sent after this (a reset link's expiry).
    pub not_after: Option<DateTime<Utc>>,
}

/// A mail as stored: its bodies already sealed by the caller, under its `id`.
pub struct Row {
    pub id: Uuid,
    pub kind: &'static str,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub not_after: Option<DateTime<Utc>>,
}

/// Queues several mails: all or none, in statements of [`power_of_two_chunks`].
///
/// [`power_of_two_chunks`]: super::db::power_of_two_chunks
pub async fn insert(
    db: &(impl ConnectionTrait + TransactionTrait),
    rows: Vec<Row>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let models = rows.into_iter().map(|row| model(row, now)).collect();
    insert_in_chunks(db, models).await.context("queue mail")
}

/// Queues one mail (in the caller's transaction, if `db` is one).
pub async fn insert_one(
    db: &impl ConnectionTrait,
    row: Row,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    outbox::Entity::insert(model(row, now))
        .exec_without_returning(db)
        .await
        .context("queue mail")?;
    Ok(())
}

fn model(row: Row, now: DateTime<Utc>) -> outbox::ActiveModel {
    outbox::ActiveModel {
        id: Set(row.id),
        created_at: Set(now),
        kind: Set(row.kind.to_owned()),
        recipient: Set(row.recipient),
        subject: Set(row.subject),
        text_body: Set(Some(row.text_body)),
        html_body: Set(Some(row.html_body)),
        not_after: Set(row.not_after),
        attempts: Set(0),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        sent_at: Set(None),
        failed_at: Set(None),
        last_error: Set(None),
    }
}

fn pending() -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(outbox::Column::SentAt.is_null())
        .add(outbox::Column::FailedAt.is_null())
}

/// Takes up to `limit` due rows for `lease`: nobody else (another instance, another
/// pass) takes them until it ends. On PostgreSQL rows locked by a concurrent claim are
/// skipped (`FOR UPDATE SKIP LOCKED`); SQLite has one writer at a time anyway.
pub async fn claim(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    lease: Duration,
    limit: u64,
) -> anyhow::Result<Vec<Claimed>> {
    let due = Query::select()
        .column(outbox::Column::Id)
        .from(outbox::Entity)
        .cond_where(
            pending().add(outbox::Column::NextAttemptAt.lte(now)).add(
                sea_orm::Condition::any()
                    .add(outbox::Column::LockedUntil.is_null())
                    .add(outbox::Column::LockedUntil.lt(now)),
            ),
        )
        .order_by(outbox::Column::NextAttemptAt, Order::Asc)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned();
    let lease_end = now + chrono::Duration::from_std(lease)?;
    let rows = outbox::Entity::update_many()
        .col_expr(outbox::Column::LockedUntil, Expr::value(lease_end))
        .filter(outbox::Column::Id.in_subquery(due))
        .exec_with_returning(db)
        .await
        .context("claim outbox rows")?;
    Ok(rows
        .into_iter()
        .map(|row| Claimed {
            id: row.id,
            recipient: row.recipient,
            subject: row.subject,
            text_body: row.text_body,
            html_body: row.html_body,
            not_after: row.not_after,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            lease_end,
        })
        .collect())
}

/// Extends a claim to `until`, if it is still the one that ended at `held` (nobody
/// claimed the row after it ran out); whether it was.
pub async fn renew(
    db: &impl ConnectionTrait,
    id: Uuid,
    held: DateTime<Utc>,
    until: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let done = outbox::Entity::update_many()
        .col_expr(outbox::Column::LockedUntil, Expr::value(until))
        .filter(pending())
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::LockedUntil.eq(held))
        .exec(db)
        .await
        .context("renew an outbox claim")?;
    Ok(done.rows_affected == 1)
}

/// Kinds of mail whose recipient is erased with the bodies once the mail is sent or
/// given up on: the last mail to a deleted account, which would otherwise be the only
/// place its address is left.
pub const ERASE_RECIPIENT: &[&str] = &["account_deleted"];

/// Delivered: the bodies (which may hold a reset link) are erased. Recorded once the
/// mails of a delivery round are out, whoever holds the rows now: they were sent.
pub async fn mark_sent(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    for chunk in padded_chunks(ids) {
        finish(db, chunk, None, outbox::Column::SentAt, now, None).await?;
    }
    Ok(())
}

/// Given up (expired, undecryptable, or too many attempts) under the claim that ends
/// at `held`: the body is erased too. A claim that ran out and was taken by another
/// instance changes nothing.
pub async fn mark_failed(
    db: &impl ConnectionTrait,
    id: Uuid,
    held: DateTime<Utc>,
    now: DateTime<Utc>,
    reason: &str,
) -> anyhow::Result<()> {
    finish(
        db,
        vec![id],
        Some(held),
        outbox::Column::FailedAt,
        now,
        Some(reason),
    )
    .await
}

async fn finish(
    db: &impl ConnectionTrait,
    ids: Vec<Uuid>,
    held: Option<DateTime<Utc>>,
    column: outbox::Column,
    now: DateTime<Utc>,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let mut update = outbox::Entity::update_many()
        .col_expr(column, Expr::value(now))
        .col_expr(
            outbox::Column::TextBody,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbox::Column::HtmlBody,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::Recipient,
            Expr::case(
                outbox::Column::Kind.is_in(ERASE_RECIPIENT.iter().copied()),
                "",
            )
            .finally(Expr::col(outbox::Column::Recipient))
            .into(),
        );
    if let Some(reason) = reason {
        update = update.col_expr(outbox::Column::LastError, Expr::value(truncate(reason)));
    }
    if let Some(held) = held {
        update = update.filter(outbox::Column::LockedUntil.eq(held));
    }
    update
        .filter(outbox::Column::Id.is_in(ids))
        .exec(db)
        .await
        .context("finish outbox rows")?;
    Ok(())
}

/// Failed this time: try again at `next` (if the claim that ends at `held` is still
/// ours).
pub async fn mark_retry(
    db: &impl ConnectionTrait,
    id: Uuid,
    held: DateTime<Utc>,
    attempts: u32,
    next: DateTime<Utc>,
    error: &str,
) -> anyhow::Result<()> {
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Attempts,
            Expr::value(i32::try_from(attempts).unwrap_or(i32::MAX)),
        )
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(next))
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(outbox::Column::LastError, Expr::value(truncate(error)))
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::LockedUntil.eq(held))
        .exec(db)
        .await
        .context("reschedule outbox row")?;
    Ok(())
}

/// Pending rows that are due now or being delivered (under a lease).
pub async fn in_progress(db: &impl ConnectionTrait, now: DateTime<Utc>) -> anyhow::Result<u64> {
    outbox::Entity::find()
        .filter(pending())
        .filter(
            sea_orm::Condition::any()
                .add(outbox::Column::LockedUntil.gt(now))
                .add(
                    sea_orm::Condition::all()
                        .add(outbox::Column::NextAttemptAt.lte(now))
                        .add(
                            sea_orm::Condition::any()
                                .add(outbox::Column::LockedUntil.is_null())
                                .add(outbox::Column::LockedUntil.lte(now)),
                        ),
                ),
        )
        .count(db)
        .await
        .context("count outbox rows in progress")
}

/// Mails not yet delivered nor given up on.
pub async fn backlog(db: &impl ConnectionTrait) -> anyhow::Result<u64> {
    outbox::Entity::find()
        .filter(pending())
        .count(db)
        .await
        .context("count outbox backlog")
}

/// Deletes sent or given-up rows queued before `before`, `batch` at a time (short
/// statements, short locks); returns how many went.
pub async fn purge_finished(
    db: &impl ConnectionTrait,
    before: DateTime<Utc>,
    batch: u64,
) -> anyhow::Result<u64> {
    let finished = sea_orm::Condition::all()
        .add(outbox::Column::CreatedAt.lt(before))
        .add(
            sea_orm::Condition::any()
                .add(outbox::Column::SentAt.is_not_null())
                .add(outbox::Column::FailedAt.is_not_null()),
        );
    super::db::delete_in_batches::<outbox::Entity>(db, outbox::Column::Id, finished, batch)
        .await
        .context("purge outbox rows")
}

/// Deletes every mail to `recipient`, sent or not (a deleted account's): returns how
/// many went.
pub async fn delete_for_recipient(
    db: &impl ConnectionTrait,
    recipient: &str,
) -> anyhow::Result<u64> {
    let result = outbox::Entity::delete_many()
        .filter(outbox::Column::Recipient.eq(recipient))
        .exec(db)
        .await
        .context("delete mail to a recipient")?;
    Ok(result.rows_affected)
}

fn truncate(s: &str) -> String {
    s.chars().take(255).collect()
}

//! The outbox table: mail waiting for delivery.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    sea_query::{Expr, LockBehavior, LockType, Order, Query},
};
use uuid::Uuid;

use super::entity::outbox;
use crate::domain::mail::OutgoingMail;

/// A row claimed for delivery.
pub struct Claimed {
    pub id: Uuid,
    pub mail: OutgoingMail,
    pub not_after: Option<DateTime<Utc>>,
    pub attempts: u32,
}

/// A mail to queue.
#[derive(Clone)]
pub struct NewMail {
    pub kind: &'static str,
    pub mail: OutgoingMail,
    /// Not to be sent after this (a reset link's expiry).
    pub not_after: Option<DateTime<Utc>>,
}

pub async fn enqueue(
    db: &impl ConnectionTrait,
    kind: &'static str,
    mail: OutgoingMail,
    not_after: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    enqueue_many(
        db,
        vec![NewMail {
            kind,
            mail,
            not_after,
        }],
        now,
    )
    .await
}

/// Queues several mails in one insert.
pub async fn enqueue_many(
    db: &impl ConnectionTrait,
    mails: Vec<NewMail>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    if mails.is_empty() {
        return Ok(());
    }
    let rows = mails.into_iter().map(|m| outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        created_at: Set(now),
        kind: Set(m.kind.to_owned()),
        recipient: Set(m.mail.to),
        subject: Set(m.mail.subject),
        text_body: Set(Some(m.mail.text)),
        html_body: Set(Some(m.mail.html)),
        not_after: Set(m.not_after),
        attempts: Set(0),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        sent_at: Set(None),
        failed_at: Set(None),
        last_error: Set(None),
    });
    outbox::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await
        .context("queue mail")?;
    Ok(())
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
            not_after: row.not_after,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            mail: OutgoingMail {
                to: row.recipient,
                subject: row.subject,
                text: row.text_body.unwrap_or_default(),
                html: row.html_body.unwrap_or_default(),
            },
        })
        .collect())
}

/// Delivered: the bodies (which may hold a reset link) are erased; one statement for
/// a whole round.
pub async fn mark_sent(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    finish(db, ids, outbox::Column::SentAt, now, None).await
}

/// Given up (expired, or too many attempts): the body is erased too.
pub async fn mark_failed(
    db: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
    reason: &str,
) -> anyhow::Result<()> {
    finish(db, &[id], outbox::Column::FailedAt, now, Some(reason)).await
}

async fn finish(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
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
        );
    if let Some(reason) = reason {
        update = update.col_expr(outbox::Column::LastError, Expr::value(truncate(reason)));
    }
    update
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await
        .context("finish outbox rows")?;
    Ok(())
}

/// Failed this time: try again at `next`.
pub async fn mark_retry(
    db: &impl ConnectionTrait,
    id: Uuid,
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

fn truncate(s: &str) -> String {
    s.chars().take(255).collect()
}

//! The audit_events table.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
    sea_query::{Expr, Query},
};
use uuid::Uuid;

use super::{
    db::insert_in_chunks,
    entity::{audit_event, user},
};

pub struct AuditRow {
    pub occurred_at: DateTime<Utc>,
    pub event: &'static str,
    pub user_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Events of this kind the row stands for (refusals are counted, not each stored).
    pub occurrences: u32,
}

/// Stores events: all or none, in statements of [`power_of_two_chunks`].
///
/// [`power_of_two_chunks`]: super::db::power_of_two_chunks
pub async fn insert_many(
    db: &(impl ConnectionTrait + TransactionTrait),
    rows: Vec<AuditRow>,
) -> anyhow::Result<()> {
    let models = rows
        .into_iter()
        .map(|r| audit_event::ActiveModel {
            id: Set(Uuid::now_v7()),
            occurred_at: Set(r.occurred_at),
            event: Set(r.event.to_owned()),
            user_id: Set(r.user_id),
            ip: Set(r.ip),
            user_agent: Set(r.user_agent),
            occurrences: Set(i32::try_from(r.occurrences).unwrap_or(i32::MAX)),
            user_hash: Set(None),
        })
        .collect();
    insert_in_chunks(db, models)
        .await
        .context("insert audit events")
}

/// Deletes events that occurred before `before`, `batch` at a time; returns how many
/// went (`AUDIT_RETENTION`).
pub async fn purge_before(
    db: &impl ConnectionTrait,
    before: DateTime<Utc>,
    batch: u64,
) -> anyhow::Result<u64> {
    let old = Condition::all().add(audit_event::Column::OccurredAt.lt(before));
    super::db::delete_in_batches::<audit_event::Entity>(db, audit_event::Column::Id, old, batch)
        .await
        .context("purge audit events")
}

/// One of an account's events, as its owner may see it (`myData`).
pub struct AuditEntry {
    pub occurred_at: DateTime<Utc>,
    pub event: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub occurrences: u32,
}

/// The user's events since `since`, newest first, at most `limit`.
pub async fn of_user_since(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    since: DateTime<Utc>,
    limit: u64,
) -> anyhow::Result<Vec<AuditEntry>> {
    Ok(audit_event::Entity::find()
        .filter(audit_event::Column::UserId.eq(user_id))
        .filter(audit_event::Column::OccurredAt.gte(since))
        .order_by_desc(audit_event::Column::OccurredAt)
        .order_by_desc(audit_event::Column::Id)
        .limit(limit)
        .all(db)
        .await
        .context("read a user's audit events")?
        .into_iter()
        .map(|m| AuditEntry {
            occurred_at: m.occurred_at,
            event: m.event,
            ip: m.ip,
            user_agent: m.user_agent,
            occurrences: u32::try_from(m.occurrences).unwrap_or(0),
        })
        .collect())
}

/// Replaces `user_id` by `user_hash` on every row of the user (a deleted account);
/// returns how many rows changed.
pub async fn anonymise(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    user_hash: &str,
) -> anyhow::Result<u64> {
    let result = audit_event::Entity::update_many()
        .col_expr(audit_event::Column::UserHash, Expr::value(user_hash))
        .col_expr(
            audit_event::Column::UserId,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(audit_event::Column::UserId.eq(user_id))
        .exec(db)
        .await
        .context("anonymise audit events")?;
    Ok(result.rows_affected)
}

/// Stores one event of a deleted account, under its hash.
pub async fn insert_anonymous(
    db: &impl ConnectionTrait,
    event: &'static str,
    user_hash: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        occurred_at: Set(at),
        event: Set(event.to_owned()),
        user_id: Set(None),
        ip: Set(None),
        user_agent: Set(None),
        occurrences: Set(1),
        user_hash: Set(Some(user_hash.to_owned())),
    }
    .insert(db)
    .await
    .context("insert anonymous audit event")?;
    Ok(())
}

/// Up to `limit` user ids that audit rows still name although no such user exists:
/// events written after their account was deleted (the writer is asynchronous, and
/// another instance may have queued one).
pub async fn orphaned_user_ids(db: &impl ConnectionTrait, limit: u64) -> anyhow::Result<Vec<Uuid>> {
    let users = Query::select()
        .column(user::Column::Id)
        .from(user::Entity)
        .to_owned();
    audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::UserId)
        .distinct()
        .filter(audit_event::Column::UserId.is_not_null())
        .filter(audit_event::Column::UserId.not_in_subquery(users))
        .limit(limit)
        .into_tuple::<Uuid>()
        .all(db)
        .await
        .context("find audit events of deleted users")
}

//! The audit_events table.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait};
use uuid::Uuid;

use super::entity::audit_event;

pub struct AuditRow {
    pub occurred_at: DateTime<Utc>,
    pub event: &'static str,
    pub user_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Events of this kind the row stands for (refusals are counted, not each stored).
    pub occurrences: u32,
}

pub async fn insert_many(db: &impl ConnectionTrait, rows: Vec<AuditRow>) -> anyhow::Result<()> {
    let models = rows.into_iter().map(|r| audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        occurred_at: Set(r.occurred_at),
        event: Set(r.event.to_owned()),
        user_id: Set(r.user_id),
        ip: Set(r.ip),
        user_agent: Set(r.user_agent),
        occurrences: Set(i32::try_from(r.occurrences).unwrap_or(i32::MAX)),
    });
    audit_event::Entity::insert_many(models)
        .exec_without_returning(db)
        .await
        .context("insert audit events")?;
    Ok(())
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

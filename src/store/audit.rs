//! The audit_events table.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use uuid::Uuid;

use super::entity::audit_event;

pub struct AuditRow {
    pub occurred_at: DateTime<Utc>,
    pub event: &'static str,
    pub user_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub async fn insert_many(db: &impl ConnectionTrait, rows: Vec<AuditRow>) -> anyhow::Result<()> {
    let models = rows.into_iter().map(|r| audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        occurred_at: Set(r.occurred_at),
        event: Set(r.event.to_owned()),
        user_id: Set(r.user_id),
        ip: Set(r.ip),
        user_agent: Set(r.user_agent),
    });
    audit_event::Entity::insert_many(models)
        .exec_without_returning(db)
        .await
        .context("insert audit events")?;
    Ok(())
}

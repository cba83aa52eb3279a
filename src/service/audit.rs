//! The audit trail: security events, each logged at once and stored in the
//! `audit_events` table by a writer task that inserts them in batches, off the request
//! path. Never a password or a token: only what happened, to whom, from where.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{RequestMeta, batch::BatchQueue};
use crate::{
    metrics::Metrics,
    store::audit::{self, AuditRow},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    Registered,
    LoginSucceeded,
    LoginFailed,
    /// An account's login attempts were refused while it cools down.
    LoginThrottled,
    /// A client IP went over a rate limit.
    RateLimited,
    RefreshReuseDetected,
    Logout,
    PasswordResetRequested,
    /// A reset request was dropped: the account had its quota of reset mails.
    PasswordResetThrottled,
    PasswordResetCompleted,
    UserDeactivated,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::RateLimited => "rate_limited",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::Logout => "logout",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordResetThrottled => "password_reset_throttled",
            Self::PasswordResetCompleted => "password_reset_completed",
            Self::UserDeactivated => "user_deactivated",
        }
    }
}

#[derive(Clone)]
pub struct AuditLog {
    queue: BatchQueue<AuditRow>,
    metrics: Metrics,
}

/// Events that may wait for the writer.
const CAPACITY: usize = 4096;
/// Largest batch written in one INSERT.
const BATCH: usize = 256;

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn start(db: DatabaseConnection, metrics: Metrics) -> Self {
        let queue = super::batch::spawn(CAPACITY, BATCH, move |rows| {
            let db = db.clone();
            async move { write(&db, rows).await }
        });
        Self { queue, metrics }
    }

    pub async fn record(
        &self,
        event: AuditEvent,
        user_id: Option<Uuid>,
        meta: Option<&RequestMeta>,
        at: DateTime<Utc>,
    ) {
        let ip = meta.map(|m| m.ip.to_string());
        self.metrics
            .counter("identity_audit_events_total", &[("event", event.as_str())])
            .increment(1);
        tracing::info!(
            target: "audit",
            event = event.as_str(),
            user_id = user_id.map(|u| u.to_string()).unwrap_or_default(),
            ip = ip.as_deref().unwrap_or_default(),
            "audit event"
        );
        let row = AuditRow {
            occurred_at: at,
            event: event.as_str(),
            user_id,
            ip,
            user_agent: meta.and_then(|m| m.user_agent.clone()),
        };
        if self.queue.push(row).await.is_err() {
            tracing::error!(
                event = event.as_str(),
                "audit writer stopped; event not stored"
            );
        }
    }

    /// Waits until every event recorded so far is stored (or `limit` passes).
    pub async fn flush(&self, limit: Duration) -> bool {
        self.queue.flush(limit).await
    }
}

async fn write(db: &DatabaseConnection, rows: Vec<AuditRow>) {
    let count = rows.len();
    if let Err(error) = audit::insert_many(db, rows).await {
        tracing::error!(error = %format!("{error:#}"), count, "audit events not stored");
    }
}

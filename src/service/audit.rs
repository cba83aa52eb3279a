//! The audit trail: security events, each logged at once and stored in the
//! `audit_events` table by a writer task that inserts them in batches, off the request
//! path. Never a password or a token: only what happened, to whom, from where.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::RequestMeta;
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

enum Command {
    Record(AuditRow),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Command>,
    metrics: Metrics,
}

/// Largest batch written in one INSERT.
const BATCH: usize = 256;

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn start(db: DatabaseConnection, metrics: Metrics) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(write_loop(db, rx));
        Self { tx, metrics }
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
        if self.tx.send(Command::Record(row)).await.is_err() {
            tracing::error!(
                event = event.as_str(),
                "audit writer stopped; event not stored"
            );
        }
    }

    /// Waits until every event recorded so far is stored (or `limit` passes).
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_err() {
            return false;
        }
        tokio::time::timeout(limit, wait)
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

async fn write_loop(db: DatabaseConnection, mut rx: mpsc::Receiver<Command>) {
    let mut commands = Vec::with_capacity(BATCH);
    // Waits for one command, then takes whatever else is queued (up to a batch).
    while rx.recv_many(&mut commands, BATCH).await > 0 {
        let mut rows = Vec::with_capacity(commands.len());
        let mut waiting = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Record(row) => rows.push(row),
                Command::Flush(done) => waiting.push(done),
            }
        }
        if !rows.is_empty() {
            let count = rows.len();
            if let Err(error) = audit::insert_many(&db, rows).await {
                tracing::error!(?error, count, "audit events not stored");
            }
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

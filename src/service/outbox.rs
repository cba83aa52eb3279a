//! Durable mail: use cases write mail to the outbox table (in the transaction of the
//! change that causes it, where there is one); this worker delivers it, retrying with
//! growing delays, never after the mail's `not_after` (a reset link's expiry), and
//! erasing bodies once they are sent or given up on. Safe with several instances: a
//! row is claimed with a lease before it is sent.

use std::{future::Future, sync::Arc, time::Duration};

use futures::StreamExt;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    clock::Clock,
    config::OutboxConfig,
    domain::backoff::ExponentialBackoff,
    mail::Mailer,
    metrics::Metrics,
    store::outbox::{self, Claimed},
};

/// How long a claim protects a row; longer than any one delivery can take.
const LEASE: Duration = Duration::from_secs(60);
/// Rows claimed per round.
const BATCH: u64 = 32;
/// Deliveries in flight at once.
const PARALLEL: usize = 4;
/// Limit on one SMTP conversation.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct Outbox {
    db: DatabaseConnection,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    cfg: OutboxConfig,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(
        db: DatabaseConnection,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        cfg: OutboxConfig,
    ) -> Self {
        Self {
            db,
            mailer,
            clock,
            metrics,
            cfg,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Tells the worker of this instance that mail is waiting (others poll).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers what is due until `stop` completes, then makes one last round.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            self.deliver_due().await;
            tokio::select! {
                () = &mut stop => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.cfg.poll_interval) => {}
            }
        }
        self.deliver_due().await;
    }

    /// Delivers what is due and waits (at most `limit`) until nothing is due or being
    /// delivered by any instance. Mail waiting for a later retry does not count.
    pub async fn settle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            self.deliver_due().await;
            if let Ok(0) = outbox::in_progress(&self.db, self.clock.now()).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// One round: claims due rows until none is left, and delivers them.
    pub async fn deliver_due(&self) {
        loop {
            let now = self.clock.now();
            let claimed = match outbox::claim(&self.db, now, LEASE, BATCH).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "cannot claim outbox rows");
                    return;
                }
            };
            if claimed.is_empty() {
                return;
            }
            let sent: Vec<Uuid> = futures::stream::iter(claimed)
                .map(|row| self.deliver(row))
                .buffer_unordered(PARALLEL)
                .filter_map(|id| async move { id })
                .collect()
                .await;
            let count = sent.len();
            self.record(
                outbox::mark_sent(&self.db, &sent, self.clock.now()).await,
                "sent",
                count,
            );
        }
    }

    /// Sends one claimed mail; its id if it went out (recorded by the caller, with the
    /// others of the round). Expiry and failures are recorded here.
    async fn deliver(&self, row: Claimed) -> Option<Uuid> {
        let now = self.clock.now();
        if row.not_after.is_some_and(|limit| limit <= now) {
            // A reset link that expired while waiting is useless, and confusing.
            self.record(
                outbox::mark_failed(&self.db, row.id, now, "expired").await,
                "expired",
                1,
            );
            return None;
        }
        let sent = tokio::time::timeout(SEND_TIMEOUT, self.mailer.send(row.mail))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
        let now = self.clock.now();
        match sent {
            Ok(()) => Some(row.id),
            Err(error) => {
                let attempts = row.attempts + 1;
                let reason = format!("{error:#}");
                tracing::warn!(error = %reason, attempts, "mail delivery failed");
                if attempts >= self.cfg.max_attempts {
                    self.record(
                        outbox::mark_failed(&self.db, row.id, now, &reason).await,
                        "failed",
                        1,
                    );
                } else {
                    let next = now
                        + chrono::Duration::from_std(self.backoff(attempts)).unwrap_or_default();
                    self.record(
                        outbox::mark_retry(&self.db, row.id, attempts, next, &reason).await,
                        "retry",
                        1,
                    );
                }
                None
            }
        }
    }

    /// The wait before attempt `attempts + 1`: doubling from the base, bounded.
    fn backoff(&self, attempts: u32) -> Duration {
        ExponentialBackoff {
            base: self.cfg.retry_base,
            max: self.cfg.retry_max,
        }
        .delay(u64::from(attempts.saturating_sub(1)))
    }

    fn record(&self, stored: anyhow::Result<()>, result: &str, count: usize) {
        if let Err(error) = stored {
            // The lease runs out and the row is tried again: at least once, not lost.
            tracing::error!(error = %format!("{error:#}"), result, "cannot record a delivery outcome");
        }
        self.metrics
            .counter("identity_mail_total", &[("result", result)])
            .increment(count as u64);
    }
}

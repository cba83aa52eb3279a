//! Durable mail: use cases write mail to the outbox table (in the transaction of the
//! change that causes it, where there is one); this worker delivers it, retrying with
//! growing delays, never after the mail's `not_after` (a reset link's expiry), and
//! erasing bodies once they are sent or given up on. Bodies are sealed at rest
//! (AES-256-GCM under a key derived from `SECRET_KEY`).
//!
//! Safe with several instances: a row is claimed with a lease before it is sent, and no
//! row is claimed again while its delivery may still be under way. A round claims only
//! what it can deliver within the lease (`WAVES` rounds of `PARALLEL` deliveries, each
//! bounded by `SMTP_TIMEOUT`); a delivery starts only if the claim outlasts its timeout,
//! extending it first when the round ran long, and if the claim ran out and another
//! instance took the row, this one leaves it. Each sent mail is recorded at once.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tokio::sync::Notify;
use uuid::Uuid;

use super::health::Check;
use crate::{
    clock::Clock,
    config::{Config, OutboxConfig},
    domain::{backoff::ExponentialBackoff, mail::OutgoingMail},
    mail::Mailer,
    metrics::Metrics,
    security::sealed::Sealer,
    store::outbox::{self, Claimed, NewMail},
};

/// Deliveries in flight at once.
const PARALLEL: usize = 4;
/// Rounds of `PARALLEL` deliveries one claim covers: a round claims only what it can
/// deliver, each delivery taking its whole timeout, before its lease runs out.
const WAVES: u32 = 3;
/// Rows claimed per round.
const BATCH: u64 = PARALLEL as u64 * WAVES as u64;
/// Time a claim keeps beyond its deliveries, for the statements around them.
const MARGIN: Duration = Duration::from_secs(10);
/// The longest a sent mail waits to be recorded with the others of its round.
const RECORD_AFTER: Duration = Duration::from_millis(100);
/// What mail bodies are sealed for (the key is derived from `SECRET_KEY` and this).
const SEAL_PURPOSE: &str = "outbox-body";

/// What the worker has seen of the SMTP server, kept in memory for `/readyz`: the time
/// (ms, by the injected clock) of the last delivery that went out and of the last that
/// did not, and whether that one timed out.
#[derive(Default)]
struct DeliveryState {
    last_sent_ms: AtomicI64,
    last_failed_ms: AtomicI64,
    timed_out: AtomicBool,
}

#[derive(Clone)]
pub struct Outbox {
    db: DatabaseConnection,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    cfg: OutboxConfig,
    /// The limit on one delivery (`SMTP_TIMEOUT`).
    send_timeout: Duration,
    /// How long a claim protects a row: every delivery of a round, each taking its
    /// whole timeout, ends before it does.
    lease: Duration,
    sealer: Arc<Sealer>,
    state: Arc<DeliveryState>,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(
        db: DatabaseConnection,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        config: &Config,
    ) -> Self {
        let send_timeout = config.mail.timeout;
        let sealer = Sealer::for_service(SEAL_PURPOSE, &config.tokens);
        Self {
            db,
            mailer,
            clock,
            metrics,
            cfg: config.outbox.clone(),
            send_timeout,
            lease: send_timeout * WAVES + MARGIN,
            sealer: Arc::new(sealer),
            state: Arc::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Tells the worker of this instance that mail is waiting (others poll).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Queues one mail (in the caller's transaction, if `db` is one).
    pub async fn enqueue(
        &self,
        db: &impl ConnectionTrait,
        kind: &'static str,
        mail: OutgoingMail,
        not_after: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let row = self.sealed(NewMail {
            kind,
            mail,
            not_after,
        });
        outbox::insert_one(db, row, now).await
    }

    /// Queues several mails, all or none.
    pub async fn enqueue_many(
        &self,
        db: &(impl ConnectionTrait + TransactionTrait),
        mails: Vec<NewMail>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let rows = mails.into_iter().map(|m| self.sealed(m)).collect();
        outbox::insert(db, rows, now).await
    }

    /// The row of a mail, its bodies (which may hold a link) sealed: the table never
    /// holds them readable.
    fn sealed(&self, mail: NewMail) -> outbox::Row {
        let id = Uuid::now_v7();
        outbox::Row {
            id,
            kind: mail.kind,
            recipient: mail.mail.to,
            subject: mail.mail.subject,
            text_body: self.sealer.seal(&associated(id, "text"), &mail.mail.text),
            html_body: self.sealer.seal(&associated(id, "html"), &mail.mail.html),
            not_after: mail.not_after,
        }
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

    /// What `/readyz` shows for mail: degraded while the last delivery tried failed
    /// (timed out, or refused), until one goes out again; a failure older than the
    /// longest retry delay no longer counts (nothing was tried since). Reads memory only.
    pub fn check(&self) -> Check {
        let failed = self.state.last_failed_ms.load(Ordering::SeqCst);
        let sent = self.state.last_sent_ms.load(Ordering::SeqCst);
        let window = i64::try_from(self.cfg.retry_max.as_millis()).unwrap_or(i64::MAX);
        let now = self.clock.now().timestamp_millis();
        if failed == 0 || failed < sent || now.saturating_sub(failed) > window {
            Check::Ok
        } else if self.state.timed_out.load(Ordering::SeqCst) {
            Check::Degraded("deliveries are timing out")
        } else {
            Check::Degraded("deliveries are failing")
        }
    }

    /// One round: claims due rows until none is left, and delivers them.
    pub async fn deliver_due(&self) {
        loop {
            let now = self.clock.now();
            let claimed = match outbox::claim(&self.db, now, self.lease, BATCH).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "cannot claim outbox rows");
                    return;
                }
            };
            if claimed.is_empty() {
                return;
            }
            self.deliver_round(claimed).await;
        }
    }

    /// Delivers claimed rows, `PARALLEL` at a time. Mails sent are recorded together,
    /// one statement for those sent within `RECORD_AFTER` of the first, not one commit
    /// a mail; far within their claims (`MARGIN`), so no other instance takes them.
    async fn deliver_round(&self, claimed: Vec<Claimed>) {
        let mut deliveries = futures::stream::iter(claimed)
            .map(|row| self.deliver(row))
            .buffer_unordered(PARALLEL);
        let mut sent = Vec::new();
        let mut record_by = None;
        loop {
            let next = match record_by {
                None => deliveries.next().await,
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, deliveries.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            self.record_sent(&mut sent).await;
                            record_by = None;
                            continue;
                        }
                    }
                }
            };
            match next {
                None => break,
                Some(Some(id)) => {
                    if sent.is_empty() {
                        record_by = Some(tokio::time::Instant::now() + RECORD_AFTER);
                    }
                    sent.push(id);
                }
                Some(None) => {}
            }
        }
        self.record_sent(&mut sent).await;
    }

    async fn record_sent(&self, sent: &mut Vec<Uuid>) {
        if sent.is_empty() {
            return;
        }
        let recorded = outbox::mark_sent(&self.db, sent, self.clock.now()).await;
        self.record(recorded, "sent", sent.len());
        sent.clear();
    }

    /// Sends one claimed mail and records the outcome, but for a mail sent: its id,
    /// which the round records.
    async fn deliver(&self, mut row: Claimed) -> Option<Uuid> {
        let now = self.clock.now();
        if row.not_after.is_some_and(|limit| limit <= now) {
            // A reset link that expired while waiting is useless, and confusing.
            self.record(
                outbox::mark_failed(&self.db, row.id, row.lease_end, now, "expired").await,
                "expired",
                1,
            );
            return None;
        }
        // The claim must outlast the whole delivery: if the round ran long, it is
        // extended first, unless another instance took the row after it ran out.
        let needed =
            now + chrono::Duration::from_std(self.send_timeout + MARGIN).unwrap_or_default();
        if row.lease_end < needed {
            match outbox::renew(&self.db, row.id, row.lease_end, needed).await {
                Ok(true) => row.lease_end = needed,
                Ok(false) => return None,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "cannot renew an outbox claim");
                    return None;
                }
            }
        }
        let mail = match self.open(&row) {
            Ok(mail) => mail,
            Err(reason) => {
                // Never sent garbled; the row is given up on and its bodies erased.
                tracing::error!(mail_id = %row.id, error = %reason, "cannot decrypt a queued mail");
                self.record(
                    outbox::mark_failed(&self.db, row.id, row.lease_end, now, reason).await,
                    "undecryptable",
                    1,
                );
                return None;
            }
        };
        let sent = tokio::time::timeout(self.send_timeout, self.mailer.send(mail)).await;
        let timed_out = sent.is_err();
        let now = self.clock.now();
        let error = match sent {
            Ok(Ok(())) => {
                self.state
                    .last_sent_ms
                    .store(now.timestamp_millis(), Ordering::SeqCst);
                return Some(row.id);
            }
            Ok(Err(error)) => error,
            Err(_) => anyhow::anyhow!("timed out after {}s", self.send_timeout.as_secs()),
        };
        self.state.timed_out.store(timed_out, Ordering::SeqCst);
        self.state
            .last_failed_ms
            .store(now.timestamp_millis(), Ordering::SeqCst);
        let attempts = row.attempts + 1;
        let reason = format!("{error:#}");
        tracing::warn!(error = %reason, attempts, "mail delivery failed");
        if attempts >= self.cfg.max_attempts {
            self.record(
                outbox::mark_failed(&self.db, row.id, row.lease_end, now, &reason).await,
                "failed",
                1,
            );
        } else {
            let next = now + chrono::Duration::from_std(self.backoff(attempts)).unwrap_or_default();
            self.record(
                outbox::mark_retry(&self.db, row.id, row.lease_end, attempts, next, &reason).await,
                "retry",
                1,
            );
        }
        None
    }

    /// The mail of a claimed row, its bodies opened. Bodies queued before they were
    /// sealed (by an older version) are sent as they are.
    fn open(&self, row: &Claimed) -> Result<OutgoingMail, &'static str> {
        let open = |field: &str, stored: &Option<String>| -> Result<String, &'static str> {
            match stored.as_deref() {
                None => Err("body missing"),
                Some(plain) if !Sealer::is_sealed(plain) => Ok(plain.to_owned()),
                Some(sealed) => self
                    .sealer
                    .open(&associated(row.id, field), sealed)
                    .map_err(|e| match e {
                        crate::security::sealed::OpenError::UnknownKey => {
                            "cannot decrypt: sealed under an unknown key"
                        }
                        _ => "cannot decrypt: does not authenticate",
                    }),
            }
        };
        Ok(OutgoingMail {
            to: row.recipient.clone(),
            subject: row.subject.clone(),
            text: open("text", &row.text_body)?,
            html: open("html", &row.html_body)?,
        })
    }

    /// The wait before attempt `attempts + 1`: doubling from the base, bounded.
    fn backoff(&self, attempts: u32) -> Duration {
        ExponentialBackoff {
            base: self.cfg.retry_base,
            max: self.cfg.retry_max,
        }
        .delay(u64::from(attempts.saturating_sub(1)))
    }

    fn record(&self, stored: anyhow::Result<()>, result: &str, mails: usize) {
        if let Err(error) = stored {
            // The lease runs out and the row is tried again: at least once, not lost.
            tracing::error!(error = %format!("{error:#}"), result, "cannot record a delivery outcome");
        }
        self.metrics
            .counter("identity_mail_total", &[("result", result)])
            .increment(u64::try_from(mails).unwrap_or(u64::MAX));
    }
}

/// What a sealed body is bound to: its row and field, so it opens nowhere else.
fn associated(id: Uuid, field: &str) -> Vec<u8> {
    format!("outbox/{id}/{field}").into_bytes()
}

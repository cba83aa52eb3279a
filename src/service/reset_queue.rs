//! Password-reset requests are answered at once and handled here, off the request
//! path, in batches: one query finds the accounts of many requests, the token-store
//! calls of a batch go out together (pipelined), and their mails are queued in one
//! insert. The queue is bounded: under a flood, a request waits for room at most
//! `PUSH_WAIT`, then is refused with `RATE_LIMITED` — known and unknown addresses
//! alike, since the request path never looks. A batch whose database work fails is
//! tried again with back-off, `ATTEMPTS` times in all; then its requests are logged
//! and counted (`identity_reset_requests_failed_total`), never dropped silently.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use super::{
    AuditEvent, Deps, RequestMeta,
    batch::{BatchQueue, BatchReceiver, PushError},
};
use crate::{
    domain::email::Email,
    error::AppError,
    mail::templates,
    metrics::Metrics,
    security::opaque_token,
    store::{outbox, users},
};

/// Requests that may wait for the worker.
const CAPACITY: usize = 4096;
/// Requests handled together.
const BATCH: usize = 256;
/// How long a request waits for room in a full queue before it is refused.
const PUSH_WAIT: Duration = Duration::from_secs(1);
/// What a refused request is told to wait before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Tries of a batch's database work, and the first pause between them (doubling):
/// 1 + 2 + 4 s, within the shutdown's drain limit.
const ATTEMPTS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_secs(1);

type Request = (Email, RequestMeta);

#[derive(Clone)]
pub struct ResetQueue {
    queue: BatchQueue<Request>,
    metrics: Metrics,
    /// Whether the last request was refused for a full queue: the warning is logged
    /// when shedding starts, not for every request.
    shedding: Arc<AtomicBool>,
}

pub struct ResetQueueReceiver(BatchReceiver<Request>);

impl ResetQueue {
    pub fn new(metrics: Metrics) -> (Self, ResetQueueReceiver) {
        let (queue, receiver) = BatchQueue::new(CAPACITY);
        let queue = Self {
            queue,
            metrics,
            shedding: Arc::default(),
        };
        (queue, ResetQueueReceiver(receiver))
    }

    /// Queues a request, waiting at most `PUSH_WAIT` for room. A full queue (a flood,
    /// or a database that fails every batch) answers `RATE_LIMITED`: the same for
    /// every address, since nothing was looked up, and honest — a `true` would promise
    /// a mail that is not coming.
    pub async fn push(&self, email: Email, meta: RequestMeta) -> Result<(), AppError> {
        match self.queue.push_within((email, meta), PUSH_WAIT).await {
            Ok(()) => {
                self.shedding.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(PushError::Full) => {
                self.metrics
                    .counter("identity_reset_requests_shed_total", &[])
                    .increment(1);
                if !self.shedding.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        capacity = CAPACITY,
                        "password reset queue full; refusing requests (RATE_LIMITED)"
                    );
                }
                Err(AppError::RateLimited {
                    retry_after: RETRY_AFTER,
                })
            }
            Err(PushError::Stopped) => Err(anyhow::anyhow!("the reset worker has stopped").into()),
        }
    }

    /// Handles what is queued, then stops the worker (which holds a handle of the
    /// queue itself, inside `Deps`).
    pub async fn stop(&self, limit: Duration) -> bool {
        self.queue.stop(limit).await
    }

    /// Waits (at most `limit`) until every request queued so far is handled.
    pub async fn flush(&self, limit: Duration) -> bool {
        self.queue.flush(limit).await
    }
}

/// The worker: runs until stopped.
pub async fn run(deps: Deps, ResetQueueReceiver(receiver): ResetQueueReceiver) {
    receiver
        .run(BATCH, |requests| async { handle(&deps, requests).await })
        .await;
}

/// Counts requests that got no mail because of a failure (not a decision).
fn count_failed(deps: &Deps, requests: usize) {
    deps.metrics
        .counter("identity_reset_requests_failed_total", &[])
        .increment(u64::try_from(requests).unwrap_or(u64::MAX));
}

/// Runs `work` until it succeeds, `ATTEMPTS` times at most, pausing between tries;
/// `None` when every try failed (logged, and the batch's `requests` counted).
async fn with_retries<T, F, Fut>(deps: &Deps, what: &str, requests: usize, mut work: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=ATTEMPTS {
        match work().await {
            Ok(done) => return Some(done),
            Err(error) if attempt < ATTEMPTS => {
                tracing::warn!(
                    error = %format!("{error:#}"),
                    attempt,
                    requests,
                    "password reset requests: {what} failed; trying again"
                );
                deps.metrics
                    .counter("identity_reset_batch_retries_total", &[])
                    .increment(1);
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(error) => {
                tracing::error!(
                    error = %format!("{error:#}"),
                    attempts = ATTEMPTS,
                    requests,
                    "password reset requests not handled: {what} failed; no mail sent"
                );
                count_failed(deps, requests);
            }
        }
    }
    None
}

async fn handle(deps: &Deps, requests: Vec<(Email, RequestMeta)>) {
    // Every address counts against its quota, known or not: once, whatever follows.
    let allowed = futures::future::join_all(
        requests
            .iter()
            .map(|(email, _)| deps.per_account_limits.allow_reset_mail(email)),
    )
    .await;
    let mut wanted = Vec::new();
    for ((email, meta), allowed) in requests.into_iter().zip(allowed) {
        match allowed {
            Ok(true) => wanted.push((email, meta)),
            Ok(false) => {
                deps.audit(AuditEvent::PasswordResetThrottled, None, Some(&meta))
                    .await;
            }
            Err(error) => {
                // Fails closed: without its quota checked, no mail.
                tracing::error!(
                    error = %format!("{error:#}"),
                    "reset quota unknown; no mail sent"
                );
                count_failed(deps, 1);
            }
        }
    }
    if wanted.is_empty() {
        return;
    }
    let addresses: Vec<&str> = wanted.iter().map(|(e, _)| e.as_str()).collect();
    let Some(found) = with_retries(deps, "looking up the accounts", wanted.len(), || {
        users::find_by_emails(&deps.db, &addresses)
    })
    .await
    else {
        return;
    };

    let cfg = &deps.config;
    let now = deps.clock.now();
    let expires_at = now + chrono::Duration::from_std(cfg.reset.ttl).unwrap_or_default();
    let mut mails = Vec::new();
    let mut tokens = Vec::new();
    for (email, meta) in &wanted {
        let user = found.iter().find(|u| u.email == email.as_str());
        deps.audit(
            AuditEvent::PasswordResetRequested,
            user.map(|u| u.id),
            Some(meta),
        )
        .await;
        // An account scheduled for deletion gets no link: its deletion is cancelled
        // with the link mailed for that, and a reset would not sign anyone in.
        let Some(user) = user.filter(|u| u.is_active && u.deletion_scheduled_for.is_none()) else {
            continue;
        };
        let token = opaque_token::generate();
        let link = cfg.reset.url_template.replace("{token}", &token);
        tokens.push((user.id, opaque_token::digest(&token)));
        mails.push(templates::password_reset(
            &cfg.service_name,
            &user.email,
            &link,
            cfg.reset.ttl,
        ));
    }
    if mails.is_empty() {
        return;
    }
    // Stored before the mail is queued: the link works from the start.
    let stored = futures::future::join_all(tokens.iter().map(|(user, hash)| {
        deps.ephemeral
            .reset_tokens
            .put_reset_token(*user, hash, expires_at)
    }))
    .await;
    let mut queued = Vec::new();
    for (mail, stored) in mails.into_iter().zip(stored) {
        match stored {
            Ok(()) => queued.push(outbox::NewMail {
                kind: "password_reset",
                mail,
                not_after: Some(expires_at),
            }),
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "reset token not stored; no mail");
                count_failed(deps, 1);
            }
        }
    }
    if queued.is_empty() {
        return;
    }
    let mails = queued.len();
    if with_retries(deps, "queueing the mails", mails, || {
        deps.outbox.enqueue_many(&deps.db, queued.clone(), now)
    })
    .await
    .is_some()
    {
        deps.outbox.wake();
    }
}

//! Password-reset requests are answered at once and handled here, off the request
//! path, in batches: one query finds the accounts of many requests, the token-store
//! calls of a batch go out together (pipelined), and their mails are queued in one
//! insert. The queue is bounded: under a flood, requests wait for room — known and
//! unknown addresses alike, since the request path never looks.

use std::time::Duration;

use super::{
    AuditEvent, Deps, RequestMeta,
    batch::{BatchQueue, BatchReceiver},
};
use crate::{
    domain::email::Email,
    mail::templates,
    security::opaque_token,
    store::{outbox, users},
};

/// Requests that may wait for the worker.
const CAPACITY: usize = 4096;
/// Requests handled together.
const BATCH: usize = 256;

type Request = (Email, RequestMeta);

#[derive(Clone)]
pub struct ResetQueue(BatchQueue<Request>);

pub struct ResetQueueReceiver(BatchReceiver<Request>);

impl ResetQueue {
    pub fn new() -> (Self, ResetQueueReceiver) {
        let (queue, receiver) = BatchQueue::new(CAPACITY);
        (Self(queue), ResetQueueReceiver(receiver))
    }

    pub async fn push(&self, email: Email, meta: RequestMeta) -> anyhow::Result<()> {
        self.0
            .push((email, meta))
            .await
            .map_err(|_| anyhow::anyhow!("the reset worker has stopped"))
    }

    /// Handles what is queued, then stops the worker (which holds a handle of the
    /// queue itself, inside `Deps`).
    pub async fn stop(&self, limit: Duration) -> bool {
        self.0.stop(limit).await
    }

    /// Waits (at most `limit`) until every request queued so far is handled.
    pub async fn flush(&self, limit: Duration) -> bool {
        self.0.flush(limit).await
    }
}

/// The worker: runs until stopped.
pub async fn run(deps: Deps, ResetQueueReceiver(receiver): ResetQueueReceiver) {
    receiver
        .run(BATCH, |requests| async {
            let count = requests.len();
            if let Err(error) = handle(&deps, requests).await {
                tracing::error!(
                    error = %format!("{error:#}"),
                    count,
                    "password reset requests not handled"
                );
            }
        })
        .await;
}

async fn handle(deps: &Deps, requests: Vec<(Email, RequestMeta)>) -> anyhow::Result<()> {
    // Every address counts against its quota, known or not.
    let allowed = futures::future::join_all(
        requests
            .iter()
            .map(|(email, _)| deps.per_account_limits.allow_reset_mail(email)),
    )
    .await;
    let mut wanted = Vec::new();
    for ((email, meta), allowed) in requests.into_iter().zip(allowed) {
        if allowed? {
            wanted.push((email, meta));
        } else {
            deps.audit(AuditEvent::PasswordResetThrottled, None, Some(&meta))
                .await;
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let addresses: Vec<&str> = wanted.iter().map(|(e, _)| e.as_str()).collect();
    let found = users::find_by_emails(&deps.db, &addresses).await?;

    let cfg = &deps.config;
    let now = deps.clock.now();
    let expires_at = now + chrono::Duration::from_std(cfg.reset.ttl)?;
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
        let Some(user) = user.filter(|u| u.is_active) else {
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
        return Ok(());
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
                tracing::error!(error = %format!("{error:#}"), "reset token not stored; no mail")
            }
        }
    }
    deps.outbox.enqueue_many(&deps.db, queued, now).await?;
    deps.outbox.wake();
    Ok(())
}

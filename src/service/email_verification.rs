//! verifyEmail and resendVerificationEmail, and the verification link `register` and
//! `login` (with `REQUIRE_VERIFIED_EMAIL`) mail.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::{AuditEvent, Deps, RequestMeta};
use crate::{
    domain::email::Email,
    error::AppError,
    mail::templates,
    security::opaque_token,
    store::{
        account_tokens::{self, Purpose},
        db::begin_write,
        users,
    },
};

/// Resends being worked on at once by one instance; beyond, a request is answered
/// `true` as always and shed (counted, logged), so a flood of resends from many clients
/// cannot pile up unbounded work behind the answers.
const RESENDS_IN_FLIGHT: usize = 64;

#[derive(Clone)]
pub struct EmailVerificationService {
    deps: Deps,
    in_flight: Arc<Semaphore>,
}

impl EmailVerificationService {
    pub fn new(deps: Deps) -> Self {
        Self {
            deps,
            in_flight: Arc::new(Semaphore::new(RESENDS_IN_FLIGHT)),
        }
    }

    /// Waits, at most `limit`, for the resends being worked on (shutdown, once no
    /// request is left to start one): each was answered `true`, so its mail is queued
    /// before the instance stops. False if some were still running.
    pub async fn drain(&self, limit: std::time::Duration) -> bool {
        let all = u32::try_from(RESENDS_IN_FLIGHT).unwrap_or(u32::MAX);
        tokio::time::timeout(limit, self.in_flight.acquire_many(all))
            .await
            .is_ok_and(|acquired| acquired.is_ok())
    }

    /// Uses a mailed token: marks the address verified (it stays verified if it
    /// already was; the token is spent either way). Never signs anyone in.
    #[tracing::instrument(skip_all)]
    pub async fn verify(&self, token: &str, meta: &RequestMeta) -> Result<bool, AppError> {
        self.deps.check_ip_limits(meta, None).await?;
        super::token_shape(token)?;
        let token_hash = opaque_token::digest(token);
        let now = self.deps.clock.now();
        let txn = begin_write(&self.deps.db)
            .await
            .context("begin email verification")?;
        let Some(user_id) =
            account_tokens::take(&txn, Purpose::VerifyEmail, &token_hash, now).await?
        else {
            return Err(AppError::InvalidToken);
        };
        if !users::mark_email_verified(&txn, user_id, now).await? {
            return Err(AppError::InvalidToken);
        }
        txn.commit().await.context("commit email verification")?;
        super::users::UserService::announce_change(&self.deps, user_id).await;
        self.deps
            .audit(AuditEvent::EmailVerified, Some(user_id), Some(meta))
            .await;
        Ok(true)
    }

    /// Answers `true` for every valid address, at once: the quota check, the lookup
    /// and the mail happen off the request path, so known, unknown and verified
    /// addresses take the same path here.
    #[tracing::instrument(skip_all)]
    pub async fn resend(&self, email: &str, meta: &RequestMeta) -> Result<bool, AppError> {
        self.deps.check_ip_limits(meta, None).await?;
        let email = Email::parse(email).map_err(|m| AppError::field("email", m))?;
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            self.deps
                .metrics
                .counter("identity_verification_resends_shed_total", &[])
                .increment(1);
            tracing::warn!("verification resends busy; a request was shed");
            return Ok(true);
        };
        let deps = self.deps.clone();
        tokio::spawn(async move {
            send_link_if_due(&deps, &email).await;
            drop(permit);
        });
        Ok(true)
    }
}

/// Mails a new verification link to `email` if it belongs to an active, unverified
/// account and its quota (one a minute, five an hour) allows. Failures are logged.
pub(super) async fn send_link_if_due(deps: &Deps, email: &Email) {
    match deps.per_account_limits.allow_verification_mail(email).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            // Fails closed: without its quota checked, no mail.
            tracing::error!(
                error = %format!("{error:#}"),
                "verification quota unknown; no mail sent"
            );
            return;
        }
    }
    if let Err(error) = send_link(deps, email).await {
        tracing::error!(error = %format!("{error:#}"), "verification mail not queued");
    }
}

async fn send_link(deps: &Deps, email: &Email) -> anyhow::Result<()> {
    let Some(user) = users::find_by_email(&deps.db, email.as_str()).await? else {
        return Ok(());
    };
    if !user.is_active || user.email_verified_at.is_some() || user.deletion_scheduled_for.is_some()
    {
        return Ok(());
    }
    let now = deps.clock.now();
    let txn = begin_write(&deps.db)
        .await
        .context("begin verification mail")?;
    queue_link(deps, &txn, user.id, &user.email, now).await?;
    txn.commit().await.context("commit verification mail")?;
    deps.outbox.wake();
    Ok(())
}

/// Issues a verification token for `user_id` (replacing any older one) and queues the
/// mail with its link, on `db` (the caller's transaction). The caller wakes the outbox
/// after committing.
pub(super) async fn queue_link(
    deps: &Deps,
    db: &impl ConnectionTrait,
    user_id: Uuid,
    email: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let cfg = &deps.config;
    let ttl = cfg.verification.ttl;
    let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or_default();
    let token = opaque_token::generate();
    let link = cfg.verification.url_template.replace("{token}", &token);
    account_tokens::issue(
        db,
        user_id,
        Purpose::VerifyEmail,
        opaque_token::digest(&token),
        now,
        expires_at,
    )
    .await?;
    let mail = templates::verify_email(&cfg.service_name, email, &link, ttl);
    deps.outbox
        .enqueue(db, "verify_email", mail, Some(expires_at), now)
        .await
}

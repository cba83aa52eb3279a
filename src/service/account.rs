//! Account deletion and data export: `requestAccountDeletion`, `cancelAccountDeletion`,
//! `myData`, and the purge of accounts whose deletion is due.
//!
//! A request signs out every session, cancels open links and schedules the deletion
//! `ACCOUNT_DELETION_GRACE` later (mailing a cancel link), or purges at once when the
//! grace is zero. The purge deletes the user row (sessions, refresh tokens and account
//! tokens cascade), the mail to its address, and rewrites its audit rows to a keyed
//! hash of its id; then mails the address one last time.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{AuditEvent, Deps, RequestMeta, assurance::Need, sessions::SessionView};
use crate::{
    domain::user::User,
    error::AppError,
    mail::templates,
    security::opaque_token,
    store::{
        account_tokens::{self, Purpose},
        audit::{self, AuditEntry},
        db::begin_write,
        outbox,
        sessions::{self, RevokeReason},
        users,
    },
};

/// What `confirm` must say.
pub const CONFIRM_WORD: &str = "DELETE";
pub const CONFIRM_MESSAGE: &str = "Type DELETE to confirm.";
/// How far back the export's audit events go.
const EXPORT_AUDIT_DAYS: i64 = 365;
/// Most audit events one export carries (refusals are already counted in rows).
const EXPORT_AUDIT_MAX: u64 = 10_000;
/// Accounts purged per query of the purge job (it repeats until none is due).
const PURGE_BATCH: u64 = 100;
/// How long a request with no grace waits for this instance's audit events to be
/// stored, so that the purge rewrites them too.
const AUDIT_FLUSH_LIMIT: Duration = Duration::from_secs(5);
/// What the key of audit hashes is derived for (with `SECRET_KEY`).
const AUDIT_HASH_PURPOSE: &str = "audit-user-hash";

/// Everything `myData` returns about the caller; never a hash, secret or token.
pub struct DataExport {
    pub user: User,
    pub sessions: Vec<SessionView>,
    pub audit_events: Vec<AuditEntry>,
    pub mfa: super::mfa::MfaStatus,
    /// Names and dates only; never key material.
    pub passkeys: Vec<super::passkeys::PasskeyView>,
    /// The linked provider identities (provider, address, dates; never a subject).
    pub identities: Vec<super::social::IdentityView>,
    pub exported_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct AccountService {
    deps: Deps,
}

impl AccountService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Schedules the caller's account for deletion `ACCOUNT_DELETION_GRACE` from now,
    /// or deletes it now when that is zero; returns when. In one transaction: the
    /// schedule (only for an active account not yet scheduled), the end of every
    /// session, the end of every open link, and the mail with the cancel link.
    #[tracing::instrument(skip_all)]
    pub async fn request_deletion(
        &self,
        bearer: Option<&str>,
        confirm: &str,
        meta: &RequestMeta,
    ) -> Result<DateTime<Utc>, AppError> {
        let deps = &self.deps;
        let (_, user, _) = deps.fresh_plus_mutation(bearer, meta).await?;
        if confirm != CONFIRM_WORD {
            return Err(AppError::field("confirm", CONFIRM_MESSAGE));
        }
        let cfg = &deps.config;
        let grace = cfg.account.deletion_grace;
        let now = deps.clock.now();
        let scheduled_for = now + chrono::Duration::from_std(grace).map_err(AppError::internal)?;

        let txn = begin_write(&deps.db)
            .await
            .context("begin deletion request")?;
        if !users::schedule_deletion(&txn, user.id, scheduled_for).await? {
            // Deactivated, or scheduled by a concurrent request (which signed this
            // session out).
            txn.rollback().await.context("roll back deletion request")?;
            return Err(AppError::Unauthenticated);
        }
        let ended =
            sessions::revoke_all_for_user(&txn, user.id, now, RevokeReason::DeletionRequested)
                .await?;
        account_tokens::delete_for_user(&txn, user.id).await?;
        if !grace.is_zero() {
            let token = opaque_token::generate();
            account_tokens::issue(
                &txn,
                user.id,
                Purpose::CancelDeletion,
                opaque_token::digest(&token),
                now,
                scheduled_for,
            )
            .await?;
            let link = cfg.account.deletion_cancel_url.replace("{token}", &token);
            let mail = templates::account_deletion_scheduled(
                &cfg.service_name,
                &user.email,
                &link,
                scheduled_for,
            );
            deps.outbox
                .enqueue(
                    &txn,
                    "account_deletion_scheduled",
                    mail,
                    Some(scheduled_for),
                    now,
                )
                .await?;
        }
        // Before COMMIT, as for a password change: if this fails nothing happens.
        deps.ephemeral
            .reset_tokens
            .cancel_reset_tokens(user.id)
            .await
            .context("cancel reset tokens")?;
        txn.commit().await.context("commit deletion request")?;

        deps.outbox.wake();
        super::users::UserService::announce_change(deps, user.id).await;
        deps.revoke_access(&ended).await;
        deps.audit(
            AuditEvent::AccountDeletionRequested,
            Some(user.id),
            Some(meta),
        )
        .await;
        tracing::info!(user_id = %user.id, %scheduled_for, "account deletion requested");
        if grace.is_zero() {
            // This instance's events of the account are stored first, so the purge
            // rewrites them too (later ones are swept by the purge job).
            if !deps.audit.flush(AUDIT_FLUSH_LIMIT).await {
                tracing::warn!("audit events not all stored before an account purge");
            }
            purge_account(deps, user.id).await?;
        }
        Ok(scheduled_for)
    }

    /// Cancels a scheduled deletion with the mailed single-use token. Never signs in.
    #[tracing::instrument(skip_all)]
    pub async fn cancel_deletion(&self, token: &str, meta: &RequestMeta) -> Result<bool, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        super::token_shape(token)?;
        let token_hash = opaque_token::digest(token);
        let now = deps.clock.now();
        let txn = begin_write(&deps.db)
            .await
            .context("begin deletion cancel")?;
        let Some(user_id) =
            account_tokens::take(&txn, Purpose::CancelDeletion, &token_hash, now).await?
        else {
            return Err(AppError::InvalidToken);
        };
        if !users::cancel_deletion(&txn, user_id).await? {
            return Err(AppError::InvalidToken);
        }
        txn.commit().await.context("commit deletion cancel")?;
        super::users::UserService::announce_change(deps, user_id).await;
        deps.audit(
            AuditEvent::AccountDeletionCancelled,
            Some(user_id),
            Some(meta),
        )
        .await;
        Ok(true)
    }

    /// A copy of the caller's data, at most `DATA_EXPORTS_PER_DAY` a day; each export
    /// is mailed to the owner and audited.
    #[tracing::instrument(skip_all)]
    pub async fn export(
        &self,
        bearer: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<DataExport, AppError> {
        let deps = &self.deps;
        let caller = deps.sensitive_caller(bearer, Need::FreshPlus).await?;
        let (user, email) = deps.caller_account(&caller).await?;
        match deps.per_account_limits.allow_data_export(&email).await {
            Ok(Ok(())) => {}
            Ok(Err(retry_after)) => {
                deps.metrics.rate_limited("data_export");
                return Err(AppError::RateLimited { retry_after });
            }
            Err(error) => return Err(AppError::Internal(error.context("data export quota"))),
        }
        let now = deps.clock.now();
        let sessions = super::sessions::live_views(deps, &caller).await?;
        let since = now - chrono::Duration::days(EXPORT_AUDIT_DAYS);
        let audit_events = audit::of_user_since(&deps.db, user.id, since, EXPORT_AUDIT_MAX).await?;
        let mfa = deps.mfa_status(user.id).await?;
        let passkeys = deps.passkey_views(user.id).await?;
        let identities = deps.identity_views(user.id).await?;
        let notice = templates::data_exported(&deps.config.service_name, &user.email);
        deps.outbox
            .enqueue(&deps.db, "data_exported", notice, None, now)
            .await?;
        deps.outbox.wake();
        deps.audit(AuditEvent::DataExported, Some(user.id), Some(meta))
            .await;
        Ok(DataExport {
            user,
            sessions,
            audit_events,
            mfa,
            passkeys,
            identities,
            exported_at: now,
        })
    }
}

/// The keyed hash that stands for a deleted user in the audit trail: HMAC-SHA256 of
/// the id under a key derived from `SECRET_KEY` for this purpose alone (as
/// `security::sealed` derives its keys), so the same account's rows stay grouped and
/// nobody without the secret can tell whose they were.
fn audit_user_hash(deps: &Deps, user_id: Uuid) -> String {
    let label = format!("identity/{AUDIT_HASH_PURPOSE}/v1");
    let key = opaque_token::hmac_bytes(
        deps.config.tokens.secret_key.expose_secret().as_bytes(),
        label.as_bytes(),
    );
    opaque_token::hmac(&key, user_id.to_string().as_bytes())
}

/// Deletes one account if its deletion is due, in one transaction: the user row (its
/// sessions, refresh tokens and account tokens cascade), every mail to its address,
/// its audit rows' user id (replaced by the keyed hash), and queues the last mail.
/// `false` if it was not due (cancelled, or another instance purged it first: the
/// delete is conditional, so of concurrent purges one wins).
pub(super) async fn purge_account(deps: &Deps, user_id: Uuid) -> anyhow::Result<bool> {
    let now = deps.clock.now();
    let hash = audit_user_hash(deps, user_id);
    let txn = begin_write(&deps.db).await.context("begin account purge")?;
    let Some(deleted) = users::delete_if_due(&txn, user_id, now).await? else {
        txn.rollback().await.context("roll back account purge")?;
        return Ok(false);
    };
    outbox::delete_for_recipient(&txn, &deleted.email).await?;
    audit::anonymise(&txn, user_id, &hash).await?;
    audit::insert_anonymous(&txn, AuditEvent::AccountDeleted.as_str(), &hash, now).await?;
    let mail = templates::account_deleted(&deps.config.service_name, &deleted.email);
    deps.outbox
        .enqueue(&txn, "account_deleted", mail, None, now)
        .await?;
    txn.commit().await.context("commit account purge")?;
    deps.outbox.wake();
    super::users::UserService::announce_change(deps, user_id).await;
    deps.metrics
        .counter("identity_accounts_deleted_total", &[])
        .increment(1);
    deps.metrics
        .counter(
            "identity_audit_events_total",
            &[("event", AuditEvent::AccountDeleted.as_str())],
        )
        .increment(1);
    tracing::info!(target: "audit", event = AuditEvent::AccountDeleted.as_str(), user_hash = %hash, "audit event");
    Ok(true)
}

/// The purge job's part: deletes every account whose deletion is due, then gives the
/// audit rows still naming a deleted user (written after its purge) the keyed hash.
/// Returns how many accounts were deleted; a failing account is logged and skipped.
pub async fn purge_due_accounts(deps: &Deps) -> anyhow::Result<u64> {
    let mut deleted = 0;
    loop {
        let due = users::due_for_deletion(&deps.db, deps.clock.now(), PURGE_BATCH).await?;
        let found = due.len();
        let mut progressed = false;
        for user_id in due {
            match purge_account(deps, user_id).await {
                Ok(true) => {
                    deleted += 1;
                    progressed = true;
                }
                Ok(false) => progressed = true,
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), %user_id, "cannot delete an account");
                }
            }
        }
        if u64::try_from(found).unwrap_or(u64::MAX) < PURGE_BATCH || !progressed {
            break;
        }
    }
    for user_id in audit::orphaned_user_ids(&deps.db, PURGE_BATCH).await? {
        audit::anonymise(&deps.db, user_id, &audit_user_hash(deps, user_id)).await?;
    }
    Ok(deleted)
}

//! Change of email: `requestEmailChange` mails a confirm link to the new address (and a
//! notice to the current one); `confirmEmailChange` makes it the sign-in address. Until
//! then the current address keeps working.

use std::time::Duration;

use anyhow::Context;

use super::{
    AuditEvent, Deps, RequestMeta,
    per_account_limits::{EMAIL_CHANGE_WINDOW, EMAIL_CHANGES_PER_HOUR},
};
use crate::{
    domain::email::Email,
    error::AppError,
    mail::templates,
    security::opaque_token,
    store::{
        account_tokens::{self, Purpose},
        db::begin_write,
        sessions::{self, RevokeReason},
        users::{self, InsertError},
    },
};

/// How long a confirm link is valid (`shared/API.md`: 3600 s).
pub const LINK_TTL: Duration = Duration::from_secs(3600);

pub const SAME_ADDRESS: &str = "This is already the address of your account.";

#[derive(Clone)]
pub struct EmailChangeService {
    deps: Deps,
}

impl EmailChangeService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Starts a change to `new_email` for a fresh+ caller. Answers `true` whether or
    /// not the address is free: a taken address gets no mail, and the current address
    /// gets the same notice either way, so the answer and the mails tell the requester
    /// nothing about other accounts. A newer request replaces an older one.
    #[tracing::instrument(skip_all)]
    pub async fn request(
        &self,
        bearer: Option<&str>,
        new_email: &str,
        meta: &RequestMeta,
    ) -> Result<bool, AppError> {
        let deps = &self.deps;
        let (_, user, current) = deps.fresh_plus_mutation(bearer, meta).await?;
        let new_email = Email::parse(new_email).map_err(|m| AppError::field("newEmail", m))?;
        if new_email == current {
            return Err(AppError::field("newEmail", SAME_ADDRESS));
        }
        if !deps.per_account_limits.allow_email_change(user.id).await? {
            deps.metrics.rate_limited("email_change");
            tracing::info!(
                user_id = %user.id,
                limit = EMAIL_CHANGES_PER_HOUR,
                "email change requests over the hourly limit"
            );
            return Err(AppError::RateLimited {
                retry_after: EMAIL_CHANGE_WINDOW,
            });
        }
        let taken = users::find_by_email(&deps.db, new_email.as_str())
            .await?
            .is_some();
        let now = deps.clock.now();
        let expires_at = now + chrono::Duration::from_std(LINK_TTL).map_err(AppError::internal)?;
        let service = &deps.config.service_name;
        let txn = begin_write(&deps.db)
            .await
            .context("begin email change request")?;
        if !taken {
            let token = opaque_token::generate();
            let link = deps
                .config
                .account
                .email_change_url
                .replace("{token}", &token);
            account_tokens::issue_email_change(
                &txn,
                user.id,
                new_email.as_str(),
                opaque_token::digest(&token),
                now,
                expires_at,
            )
            .await?;
            let confirm =
                templates::confirm_email_change(service, new_email.as_str(), &link, LINK_TTL);
            deps.outbox
                .enqueue(&txn, "confirm_email_change", confirm, Some(expires_at), now)
                .await?;
        }
        let notice =
            templates::email_change_requested(service, current.as_str(), new_email.as_str());
        deps.outbox
            .enqueue(&txn, "email_change_requested", notice, None, now)
            .await?;
        txn.commit().await.context("commit email change request")?;
        deps.outbox.wake();
        deps.metrics
            .counter("identity_email_changes_total", &[("step", "requested")])
            .increment(1);
        deps.audit(AuditEvent::EmailChangeRequested, Some(user.id), Some(meta))
            .await;
        Ok(true)
    }

    /// Uses a confirm link: the address it names becomes the account's sign-in address
    /// (verified). Every other session ends (all of them without an access token of
    /// the account), open reset and verification links are cancelled, and both
    /// addresses are told. `INVALID_TOKEN` if the link is unknown, expired, used, or
    /// its address was taken meanwhile (the unique index decides a race).
    #[tracing::instrument(skip_all)]
    pub async fn confirm(
        &self,
        bearer: Option<&str>,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<bool, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        super::token_shape(token)?;
        // The session the link is opened from, if it is one of the account's: it stays
        // signed in. Anything else (no token, an expired one, another account's) keeps
        // nothing.
        let calling = match bearer {
            Some(_) => deps.caller(bearer).await.ok(),
            None => None,
        };
        let now = deps.clock.now();
        let txn = begin_write(&deps.db).await.context("begin email change")?;
        let Some((user_id, new_email)) =
            account_tokens::take_email_change(&txn, &opaque_token::digest(token), now).await?
        else {
            return Err(AppError::InvalidToken);
        };
        let Some(user) = users::find_by_id(&txn, user_id)
            .await?
            .filter(|u| u.is_active)
        else {
            return Err(AppError::InvalidToken);
        };
        match users::change_email(&txn, user_id, &new_email, now).await {
            Ok(true) => {}
            Ok(false) => return Err(AppError::InvalidToken),
            Err(InsertError::EmailTaken) => {
                tracing::info!(%user_id, "email change lost to another account taking the address");
                return Err(AppError::InvalidToken);
            }
            Err(InsertError::Other(error)) => return Err(error.into()),
        }
        let keep = calling
            .filter(|c| c.user_id == user_id)
            .map(|c| c.session_id);
        let ended = match keep {
            Some(keep) => {
                let idle = deps.config.tokens.refresh_idle_ttl;
                sessions::revoke_of_user(
                    &txn,
                    user_id,
                    None,
                    Some(keep),
                    now,
                    idle,
                    RevokeReason::EmailChange,
                )
                .await?
            }
            None => {
                sessions::revoke_all_for_user(&txn, user_id, now, RevokeReason::EmailChange).await?
            }
        };
        account_tokens::cancel(&txn, user_id, Purpose::VerifyEmail).await?;
        let service = &deps.config.service_name;
        for to in [user.email.as_str(), new_email.as_str()] {
            let mail = templates::email_changed(service, to, &user.email, &new_email);
            deps.outbox
                .enqueue(&txn, "email_changed", mail, None, now)
                .await?;
        }
        // A reset link mailed to the old address must not outlive the change. Cancelled
        // before COMMIT: if this fails, the change does not happen.
        deps.ephemeral
            .reset_tokens
            .cancel_reset_tokens(user_id)
            .await
            .context("cancel reset tokens")?;
        txn.commit().await.context("commit email change")?;

        deps.outbox.wake();
        deps.revoke_access(&ended).await;
        super::users::UserService::announce_change(deps, user_id).await;
        deps.metrics
            .counter("identity_email_changes_total", &[("step", "confirmed")])
            .increment(1);
        deps.audit(AuditEvent::EmailChanged, Some(user_id), Some(meta))
            .await;
        tracing::debug!(%user_id, ended = ended.len(), "email changed");
        Ok(true)
    }
}

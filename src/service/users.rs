//! `me`: the user behind an access token.

use anyhow::Context;
use sea_orm::TransactionTrait;

use super::{AuditEvent, Deps};
use crate::{
    domain::{email::Email, user::User},
    error::AppError,
    store::{
        sessions::{self, RevokeReason},
        users,
    },
};

#[derive(Clone)]
pub struct UserService {
    deps: Deps,
}

impl UserService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    pub fn metrics(&self) -> crate::metrics::Metrics {
        self.deps.metrics.clone()
    }

    /// The active user an access token speaks for; `Unauthenticated` for a missing,
    /// malformed, expired or revoked token, or a deactivated account.
    #[tracing::instrument(skip_all)]
    pub async fn me(&self, bearer: Option<&str>) -> Result<User, AppError> {
        let token = bearer.ok_or(AppError::Unauthenticated)?;
        let now = self.deps.clock.now();
        let claims = self
            .deps
            .jwt
            .verify_access(token, now)
            .ok_or(AppError::Unauthenticated)?;
        if self.deps.session_revoked(claims.sid).await? {
            return Err(AppError::Unauthenticated);
        }
        let user = match self.deps.ephemeral.revocations.cached_user(claims.sub) {
            Some(user) => Some(user),
            None => {
                self.deps
                    .metrics
                    .counter("identity_profile_database_reads_total", &[])
                    .increment(1);
                let user = users::find_by_id(&self.deps.db, claims.sub).await?;
                if let Some(user) = &user {
                    self.deps.ephemeral.revocations.cache_user(user);
                }
                user
            }
        };
        match user {
            Some(user) if user.is_active => Ok(user),
            _ => Err(AppError::Unauthenticated),
        }
    }

    /// Tells every instance a user's record changed (a reset, a deactivation, a new
    /// email…); a failure is logged: copies expire on their own.
    pub(super) async fn announce_change(deps: &Deps, user_id: uuid::Uuid) {
        if let Err(error) = deps.ephemeral.revocations.user_changed(user_id).await {
            tracing::warn!(error = %format!("{error:#}"), "user change not announced");
        }
    }

    /// Tells every instance the user signed in at `at` (`record_login`), which moved
    /// `lastLogin` and nothing else: copies are kept, with the new time.
    pub(super) async fn announce_sign_in(
        deps: &Deps,
        user_id: uuid::Uuid,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        if let Err(error) = deps.ephemeral.revocations.user_signed_in(user_id, at).await {
            tracing::warn!(error = %format!("{error:#}"), "sign-in not announced");
        }
    }

    /// Deactivates an account (an operator's action): it can no longer sign in, and
    /// every session ends now, access tokens included. Returns false if no such user.
    pub async fn deactivate(&self, email: &str) -> Result<bool, AppError> {
        let email = Email::parse(email).map_err(|m| AppError::field("email", m))?;
        let Some(user) = users::find_by_email(&self.deps.db, email.as_str()).await? else {
            return Ok(false);
        };
        // The user row first, then the sessions, in one transaction: a login that
        // checked the password meanwhile either sees the account inactive or had its
        // session inserted before, and so revoked here (`sessions::create`).
        let now = self.deps.clock.now();
        let txn = self.deps.db.begin().await.context("begin deactivation")?;
        users::set_active(&txn, user.id, false).await?;
        let revoked =
            sessions::revoke_all_for_user(&txn, user.id, now, RevokeReason::Deactivated).await?;
        txn.commit().await.context("commit deactivation")?;
        Self::announce_change(&self.deps, user.id).await;
        self.deps.revoke_access(&revoked).await;
        self.deps
            .audit(AuditEvent::UserDeactivated, Some(user.id), None)
            .await;
        Ok(true)
    }
}

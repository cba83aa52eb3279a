//! requestPasswordReset and resetPassword.

use anyhow::Context;
use secrecy::SecretString;

use super::{
    AuditEvent, Deps, RequestMeta,
    new_password::{NewPasswordFields, check_new_password},
};
use crate::{
    domain::{email::Email, password::UserContext},
    error::AppError,
    mail::templates,
    security::{opaque_token, per_ip_limits::IpLimit},
    store::{
        account_tokens::{self, Purpose},
        db::begin_write,
        sessions::{self, RevokeReason},
        users,
    },
};

pub struct ResetPasswordInput {
    pub token: String,
    pub new_password: SecretString,
    pub new_password_confirm: SecretString,
}

#[derive(Clone)]
pub struct PasswordResetService {
    deps: Deps,
}

impl PasswordResetService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Answers `true` for every valid address, at once: looking the account up, storing
    /// the token and queueing the mail happen off the request path (`reset_queue`), so
    /// the answer takes the same time whether or not the address is known.
    #[tracing::instrument(skip_all)]
    pub async fn request(&self, email: &str, meta: &RequestMeta) -> Result<bool, AppError> {
        self.deps
            .check_ip_limits(meta, Some(IpLimit::ResetRequest))
            .await?;
        let email = Email::parse(email).map_err(|m| AppError::field("email", m))?;
        self.deps.reset_queue.push(email, meta.clone()).await?;
        Ok(true)
    }

    /// Checks the new password before consuming the token, so a rejected password
    /// leaves the link usable; then, in one transaction, sets the password, ends every
    /// session of the user, queues the mail that tells them, and consumes the token.
    #[tracing::instrument(skip_all)]
    pub async fn reset(
        &self,
        input: ResetPasswordInput,
        meta: &RequestMeta,
    ) -> Result<bool, AppError> {
        self.deps
            .check_ip_limits(meta, Some(IpLimit::ResetToken))
            .await?;
        super::token_shape(&input.token)?;
        let token_hash = opaque_token::digest(&input.token);
        let now = self.deps.clock.now();
        let Some(user_id) = self
            .deps
            .ephemeral
            .reset_tokens
            .peek_reset_token(&token_hash, now)
            .await?
        else {
            return Err(AppError::InvalidToken);
        };
        let user = match users::find_by_id(&self.deps.db, user_id).await? {
            Some(user) if user.is_active && user.deletion_scheduled_for.is_none() => user,
            _ => return Err(AppError::InvalidToken),
        };

        let context = UserContext {
            email: &user.email,
            full_name: &user.full_name,
        };
        let password = check_new_password(
            &self.deps.policy,
            &input.new_password,
            &input.new_password_confirm,
            &context,
            NewPasswordFields::RESET,
        )
        .map_err(AppError::BadUserInput)?;

        let client = self.deps.client_key(meta);
        let hash = self.deps.hasher.hash(client, password).await?;
        // The new hash, the end of every session, the notice to the owner and the
        // token's consumption: all or nothing. The token is taken last, just before
        // COMMIT: any database error before leaves it usable (the transaction rolls
        // back when dropped), and of concurrent resets with one token only the one
        // that takes it commits (the others wait on the user's row, then find the
        // token gone and roll back). Only a failed COMMIT, whose outcome the service
        // cannot know, leaves the token spent: putting it back could let it be used
        // twice.
        let now = self.deps.clock.now();
        let notice = templates::password_changed(&self.deps.config.service_name, &user.email);
        let txn = begin_write(&self.deps.db)
            .await
            .context("begin password reset")?;
        users::set_password_hash(&txn, user.id, hash).await?;
        let revoked =
            sessions::revoke_all_for_user(&txn, user.id, now, RevokeReason::PasswordReset).await?;
        // A change of address requested from a session the reset is meant to lock out
        // must not complete after it.
        account_tokens::cancel(&txn, user.id, Purpose::ChangeEmail).await?;
        self.deps
            .outbox
            .enqueue(&txn, "password_changed", notice, None, now)
            .await?;
        if self
            .deps
            .ephemeral
            .reset_tokens
            .take_reset_token(&token_hash, self.deps.clock.now())
            .await?
            != Some(user.id)
        {
            txn.rollback().await.context("roll back password reset")?;
            return Err(AppError::InvalidToken);
        }
        txn.commit().await.context("commit password reset")?;
        super::users::UserService::announce_change(&self.deps, user.id).await;
        self.deps.outbox.wake();
        self.deps.revoke_access(&revoked).await;
        if let Ok(email) = Email::parse(&user.email) {
            // The owner proved control of the mailbox: let them sign in at once.
            self.deps
                .per_account_limits
                .forget_login_attempts(&email, client)
                .await;
        }
        self.deps
            .audit(
                AuditEvent::PasswordResetCompleted,
                Some(user.id),
                Some(meta),
            )
            .await;
        Ok(true)
    }
}

//! `changePassword`: a signed-in user replaces their password, proving the current one.

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use super::{
    AuditEvent, AuthPayload, Deps, RequestMeta,
    assurance::Need,
    auth::REQUIRED,
    new_password::{NewPasswordFields, check_new_password},
};
use crate::{
    domain::{
        assurance::Assurance,
        password::{self, UserContext},
    },
    error::AppError,
    mail::templates,
    security::password::Verification,
    store::{
        account_tokens::{self, Purpose},
        db::begin_write,
        sessions::{self},
        users,
    },
};

pub struct ChangePasswordInput {
    pub current_password: SecretString,
    pub new_password: SecretString,
    pub new_password_confirm: SecretString,
    pub sign_out_other_sessions: bool,
}

pub const SAME_AS_CURRENT: &str = "The new password must differ from the current one.";

#[derive(Clone)]
pub struct PasswordChangeService {
    deps: Deps,
}

impl PasswordChangeService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Checks the new password against the policy (nothing counted when it fails), then
    /// the current one as login does (a hashing place, the attempt counted against the
    /// back-off, the check); then, in one transaction, replaces the hash (only if it is
    /// still the one just checked), ends the calling session (and the others unless
    /// kept), starts the session that replaces it, queues the notice and cancels the
    /// open reset link.
    #[tracing::instrument(skip_all)]
    pub async fn change(
        &self,
        bearer: Option<&str>,
        input: ChangePasswordInput,
        meta: &RequestMeta,
    ) -> Result<AuthPayload, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        let caller = deps.sensitive_caller(bearer, Need::SecondFactor).await?;
        let (user, email) = deps.caller_account(&caller).await?;
        if input.current_password.expose_secret().is_empty() {
            return Err(AppError::field("currentPassword", REQUIRED));
        }
        let context = UserContext {
            email: &user.email,
            full_name: &user.full_name,
        };
        let new_password = check_new_password(
            &deps.policy,
            &input.new_password,
            &input.new_password_confirm,
            &context,
            NewPasswordFields::RESET,
        )
        .map_err(AppError::BadUserInput)?;

        let client = deps.client_key(meta);
        let place = deps
            .admit_credential_check(&email, Some(user.id), meta)
            .await?;
        let verified_hash = users::find_credential(&deps.db, email.as_str())
            .await?
            .filter(|c| c.user.id == user.id)
            .map(|c| c.password_hash)
            .filter(|h| !h.is_empty());
        let current = password::normalise(input.current_password.expose_secret());
        let verification = place.verify(current.clone(), verified_hash.clone()).await?;
        let (Some(verified_hash), Verification::Valid { .. }) = (verified_hash, verification)
        else {
            deps.metrics.login("failed");
            deps.audit(AuditEvent::LoginFailed, Some(user.id), Some(meta))
                .await;
            return Err(AppError::InvalidCredentials);
        };
        // The current password is proved: this client's back-off for the account ends.
        deps.per_account_limits
            .login_succeeded(&email, client)
            .await;
        // Both are normalised, and `current` matches the stored hash: the new password
        // equals the current one exactly when the strings are equal (a second argon2
        // run against the hash would answer the same, at its cost).
        if new_password.expose_secret() == current.expose_secret() {
            return Err(AppError::field("newPassword", SAME_AS_CURRENT));
        }
        let new_hash = deps.hasher.hash(client, new_password).await?;

        let now = deps.clock.now();
        let (refresh_token, new_session) = deps.new_session(
            user.id,
            new_hash.clone(),
            Assurance::password(now),
            meta,
            now,
        )?;
        let notice = templates::password_changed_by_owner(
            &deps.config.service_name,
            &user.email,
            input.sign_out_other_sessions,
        );
        // The new hash, the end of the replaced sessions, the new session and the notice:
        // all or nothing. The hash is written first and only over the one just checked:
        // a reset or another change that committed meanwhile wins, and this fails as a
        // wrong password would; the row stays locked until COMMIT, so a login that
        // checked the old password cannot start a session after it.
        let txn = begin_write(&deps.db)
            .await
            .context("begin password change")?;
        if !users::change_password_hash(&txn, user.id, &verified_hash, new_hash.clone()).await? {
            txn.rollback().await.context("roll back password change")?;
            deps.metrics.login("failed");
            deps.audit(AuditEvent::LoginFailed, Some(user.id), Some(meta))
                .await;
            return Err(AppError::InvalidCredentials);
        }
        let Some(ended) = sessions::end_for_password_change(
            &txn,
            user.id,
            caller.session_id,
            input.sign_out_other_sessions,
            now,
        )
        .await?
        else {
            // The calling session ended while the password was being checked.
            txn.rollback().await.context("roll back password change")?;
            return Err(AppError::Unauthenticated);
        };
        let created = sessions::create_in(&txn, new_session).await?;
        deps.outbox
            .enqueue(&txn, "password_changed", notice, None, now)
            .await?;
        // Neither a change of address nor a reset link issued before the change may
        // undo it. The reset link is cancelled before COMMIT: if this fails the change
        // does not happen; if COMMIT fails after it, only the link is lost.
        account_tokens::cancel(&txn, user.id, Purpose::ChangeEmail).await?;
        deps.ephemeral
            .reset_tokens
            .cancel_reset_tokens(user.id)
            .await
            .context("cancel reset tokens")?;
        txn.commit().await.context("commit password change")?;

        deps.outbox.wake();
        deps.revoke_access(&ended).await;
        deps.revoke_access(&created.ended).await;
        deps.audit(AuditEvent::PasswordChanged, Some(user.id), Some(meta))
            .await;
        tracing::debug!(
            user_id = %user.id,
            ended = ended.len(),
            "password changed"
        );
        let assurance = Assurance::password(now);
        let access_token = deps
            .jwt
            .issue_access(user.id, created.session_id, &assurance, now)?;
        Ok(AuthPayload {
            access_token,
            refresh_token,
            expires_in: deps.jwt.access_ttl(),
            user,
        })
    }
}

//! register, login, refreshToken, logout.

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use super::{
    AuditEvent, AuthPayload, Deps, RequestMeta,
    new_password::{NewPasswordFields, check_new_password},
};
use crate::{
    domain::{
        assurance::{Assurance, Method},
        client::ClientKey,
        device::Device,
        email::Email,
        password::{self, UserContext},
        user::{User, parse_full_name},
    },
    error::{AppError, FieldErrors},
    mail::templates,
    security::{
        opaque_token,
        password::{HashError, Verification},
    },
    store::{
        db,
        sessions::{self, NewSession, RevokeReason, Rotation},
        users::{self, InsertError, NewUser},
    },
};

pub struct RegisterInput {
    pub email: String,
    pub full_name: String,
    pub password: SecretString,
    pub password_confirm: SecretString,
}

pub struct LoginInput {
    pub email: String,
    pub password: SecretString,
}

pub const EMAIL_TAKEN: &str = "A user with that email already exists.";
pub(super) const REQUIRED: &str = "This field is required.";

#[derive(Clone)]
pub struct AuthService {
    deps: Deps,
    /// Key under which a refresh token's successor is derived.
    successor_key: [u8; 32],
}

impl AuthService {
    pub fn new(deps: Deps) -> Self {
        let successor_key = opaque_token::hmac_bytes(
            deps.config.tokens.secret_key.expose_secret().as_bytes(),
            b"identity/refresh-token-successor/v1",
        );
        Self {
            deps,
            successor_key,
        }
    }

    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        input: RegisterInput,
        meta: &RequestMeta,
    ) -> Result<AuthPayload, AppError> {
        self.deps.check_ip_limits(meta, None).await?;
        let mut errors = FieldErrors::new();
        let email = Email::parse(&input.email)
            .map_err(|m| errors.add("email", m))
            .ok();
        let full_name = parse_full_name(&input.full_name)
            .map_err(|m| errors.add("fullName", m))
            .ok();
        let context = UserContext {
            email: email.as_ref().map_or(input.email.trim(), Email::as_str),
            full_name: full_name.as_deref().unwrap_or(input.full_name.trim()),
        };
        let password = check_new_password(
            &self.deps.policy,
            &input.password,
            &input.password_confirm,
            &context,
            NewPasswordFields::REGISTER,
        )
        .map_err(|e| errors.merge(e))
        .ok();
        errors.into_result()?;
        let (Some(email), Some(full_name), Some(password)) = (email, full_name, password) else {
            return Err(AppError::internal(anyhow::anyhow!(
                "validated input missing"
            )));
        };

        let client = self.deps.client_key(meta);
        let password_hash = self.deps.hasher.hash(client, password).await?;
        // The user row, its verification token and the mail with the link: all or
        // nothing.
        let now = self.deps.clock.now();
        let txn = db::begin_write(&self.deps.db)
            .await
            .context("begin registration")?;
        let user = users::insert(
            &txn,
            NewUser {
                email: email.into_string(),
                full_name,
                password_hash: password_hash.clone(),
                now,
            },
        )
        .await
        .map_err(|e| match e {
            InsertError::EmailTaken => AppError::field("email", EMAIL_TAKEN),
            InsertError::Other(e) => AppError::Internal(e),
        })?;
        super::email_verification::queue_link(&self.deps, &txn, user.id, &user.email, now).await?;
        txn.commit().await.context("commit registration")?;
        self.deps.outbox.wake();
        self.deps
            .audit(AuditEvent::Registered, Some(user.id), Some(meta))
            .await;
        if self.deps.config.verification.required {
            return Err(AppError::EmailNotVerified { email: user.email });
        }
        let assurance = Assurance::password(now);
        self.deps
            .start_session(user, password_hash, assurance, meta)
            .await?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("new user changed at once")))
    }

    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        input: LoginInput,
        meta: &RequestMeta,
    ) -> Result<AuthPayload, AppError> {
        self.deps.check_ip_limits(meta, None).await?;
        let mut errors = FieldErrors::new();
        let email = Email::parse(&input.email)
            .map_err(|m| errors.add("email", m))
            .ok();
        if input.password.expose_secret().is_empty() {
            errors.add("password", REQUIRED);
        }
        errors.into_result()?;
        let Some(email) = email else {
            return Err(AppError::internal(anyhow::anyhow!(
                "validated input missing"
            )));
        };

        let client = self.deps.client_key(meta);
        let place = self.deps.admit_credential_check(&email, None, meta).await?;
        let credential = users::find_credential(&self.deps.db, email.as_str()).await?;
        let password = password::normalise(input.password.expose_secret());
        // Unknown emails are verified against a dummy hash: same work, same time.
        let (user, password_hash, has_totp) = match credential {
            // No password (a social account): the dummy hash, same work, same time.
            Some(c) => (
                Some(c.user),
                Some(c.password_hash).filter(|h| !h.is_empty()),
                c.has_totp,
            ),
            None => (None, None, false),
        };
        let verified_hash = password_hash.clone().unwrap_or_default();
        let verification = place.verify(password.clone(), password_hash).await?;
        let (user, needs_rehash) = match (user, verification) {
            (Some(user), Verification::Valid { needs_rehash }) if user.is_active => {
                (user, needs_rehash)
            }
            (user, _) => return Err(self.login_failed(user.map(|u| u.id), meta).await),
        };
        // Only a correct password learns that a deletion is scheduled: a wrong one
        // gets the one answer every failure gets.
        if let Some(scheduled_for) = user.deletion_scheduled_for {
            self.deps.metrics.login("pending_deletion");
            return Err(AppError::AccountPendingDeletion { scheduled_for });
        }
        if self.deps.config.verification.required && user.email_verified_at.is_none() {
            // The password was right: the owner gets a new link (within its quota).
            super::email_verification::send_link_if_due(&self.deps, &email).await;
            return Err(AppError::EmailNotVerified { email: user.email });
        }
        // The upgrade can wait for the next login if there is no place for it now.
        let new_hash = match needs_rehash {
            true => match self.deps.hasher.hash(client, password.clone()).await {
                Ok(hash) => Some(hash),
                Err(HashError::Busy { .. }) => None,
                Err(error) => return Err(error.into()),
            },
            false => None,
        };
        let mut current_hash = new_hash.clone().unwrap_or_else(|| verified_hash.clone());
        let now = self.deps.clock.now();
        // Both steps are conditional on the hash just verified (and the account still
        // active): a reset or deactivation that committed while the password was being
        // checked wins, and this login fails as if the password were wrong.
        if !users::record_login(&self.deps.db, user.id, now, &verified_hash, new_hash).await? {
            // Or a concurrent login of the same user re-hashed the same password: one
            // more check, against what is stored now, tells the two apart.
            match self
                .check_again(&email, user.id, client, password, now)
                .await?
            {
                Some(hash) => current_hash = hash,
                None => return Err(self.login_failed(Some(user.id), meta).await),
            }
        }
        super::users::UserService::announce_sign_in(&self.deps, user.id, now).await;
        let user_id = user.id;
        if has_totp {
            // The password was right: this client's back-off ends, and the login goes
            // on with the second factor (no tokens yet).
            self.deps
                .per_account_limits
                .login_succeeded(&email, client)
                .await;
            return Err(self
                .deps
                .mfa_challenge(user_id, &current_hash, &[Method::Pwd], meta)
                .await);
        }
        let user = User {
            last_login: Some(now),
            ..user
        };
        let assurance = Assurance::password(now);
        let Some(payload) = self
            .deps
            .start_session(user, current_hash, assurance, meta)
            .await?
        else {
            return Err(self.login_failed(Some(user_id), meta).await);
        };
        self.deps
            .per_account_limits
            .login_succeeded(&email, client)
            .await;
        self.deps.metrics.login("succeeded");
        tracing::debug!(%user_id, rehashed = needs_rehash, "password verified");
        self.deps
            .audit(AuditEvent::LoginSucceeded, Some(user_id), Some(meta))
            .await;
        Ok(payload)
    }

    /// The password checked against the user's hash as stored now (after it changed
    /// under a login), and the login recorded on that hash; the hash, or `None` if the
    /// password no longer matches or the account is inactive.
    async fn check_again(
        &self,
        email: &Email,
        user_id: uuid::Uuid,
        client: ClientKey,
        password: SecretString,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, AppError> {
        let Some(current) = users::find_credential(&self.deps.db, email.as_str()).await? else {
            return Ok(None);
        };
        if current.user.id != user_id || !current.user.is_active {
            return Ok(None);
        }
        let hash = current.password_hash;
        let verification = self
            .deps
            .hasher
            .verify(client, password, Some(hash.clone()))
            .await?;
        if !matches!(verification, Verification::Valid { .. }) {
            return Ok(None);
        }
        Ok(
            users::record_login(&self.deps.db, user_id, now, &hash, None)
                .await?
                .then_some(hash),
        )
    }

    /// Counts and audits a failed login; the one answer every failure gets.
    async fn login_failed(&self, user_id: Option<uuid::Uuid>, meta: &RequestMeta) -> AppError {
        self.deps.metrics.login("failed");
        self.deps
            .audit(AuditEvent::LoginFailed, user_id, Some(meta))
            .await;
        AppError::InvalidCredentials
    }

    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        refresh_token: &str,
        meta: &RequestMeta,
    ) -> Result<AuthPayload, AppError> {
        self.deps.check_ip_limits(meta, None).await?;
        super::token_shape(refresh_token)?;
        let successor = self.successor_of(refresh_token);
        let now = self.deps.clock.now();
        let rotation = sessions::rotate(
            &self.deps.db,
            &opaque_token::digest(refresh_token),
            opaque_token::digest(&successor),
            now,
            &meta.ip.to_string(),
            &sessions::Lifetimes {
                idle: self.deps.config.tokens.refresh_idle_ttl,
                grace: self.deps.config.tokens.refresh_reuse_grace,
            },
        )
        .await?;
        match rotation {
            Rotation::Rotated {
                session_id,
                assurance,
                user,
            }
            | Rotation::Replayed {
                session_id,
                assurance,
                user,
            } => {
                // Refreshing keeps the session's assurance (and its auth_time).
                let access_token = self
                    .deps
                    .jwt
                    .issue_access(user.id, session_id, &assurance, now)?;
                Ok(AuthPayload {
                    access_token,
                    refresh_token: successor,
                    expires_in: self.deps.jwt.access_ttl(),
                    user,
                })
            }
            Rotation::ReuseDetected { session_id, user } => {
                tracing::warn!(user_id = %user.id, %session_id, "refresh token reuse detected; session revoked");
                self.deps.revoke_access(&[session_id]).await;
                self.deps
                    .audit(AuditEvent::RefreshReuseDetected, Some(user.id), Some(meta))
                    .await;
                let mail = templates::session_revoked(&self.deps.config.service_name, &user.email);
                self.deps
                    .outbox
                    .enqueue(&self.deps.db, "session_revoked", mail, None, now)
                    .await?;
                self.deps.outbox.wake();
                Err(AppError::InvalidToken)
            }
            Rotation::Invalid => Err(AppError::InvalidToken),
        }
    }

    /// Revokes the token's whole family. Always `Ok(true)` for a well-formed request:
    /// unknown, expired and revoked tokens are already logged out.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, refresh_token: &str, meta: &RequestMeta) -> Result<bool, AppError> {
        self.deps.check_ip_limits(meta, None).await?;
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Ok(true);
        }
        let now = self.deps.clock.now();
        let session = sessions::revoke_by_token(
            &self.deps.db,
            &opaque_token::digest(refresh_token),
            now,
            RevokeReason::Logout,
        )
        .await?;
        if let Some(revoked) = session {
            self.deps.revoke_access(&[revoked.session_id]).await;
            if revoked.was_live {
                self.deps
                    .audit(AuditEvent::Logout, Some(revoked.user_id), Some(meta))
                    .await;
            }
        }
        Ok(true)
    }

    /// The public keys that verify access tokens (JWKS), when they are signed with
    /// EdDSA; `None` with HS256.
    pub fn jwks(&self) -> Option<&serde_json::Value> {
        self.deps.jwt.jwks()
    }

    /// The successor of a refresh token is derived, not random: every concurrent
    /// refresh with one token gets the same successor, and no plaintext is stored.
    fn successor_of(&self, refresh_token: &str) -> String {
        opaque_token::hmac(&self.successor_key, refresh_token.as_bytes())
    }
}

impl Deps {
    /// A session to start now for `user_id` from this client, proved as `assurance`
    /// says, and the refresh token that is its first (only its hash is stored).
    pub(super) fn new_session(
        &self,
        user_id: uuid::Uuid,
        password_hash: String,
        assurance: Assurance,
        meta: &RequestMeta,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(String, NewSession), AppError> {
        let tokens = &self.config.tokens;
        let refresh_ttl =
            chrono::Duration::from_std(tokens.refresh_ttl).map_err(AppError::internal)?;
        let refresh_token = opaque_token::generate();
        let new = NewSession {
            user_id,
            password_hash,
            token_hash: opaque_token::digest(&refresh_token),
            now,
            expires_at: now + refresh_ttl,
            device: Device::from_user_agent(meta.user_agent.as_deref()),
            ip: Some(meta.ip.to_string()),
            max_per_user: tokens.max_sessions_per_user,
            idle: tokens.refresh_idle_ttl,
            assurance,
        };
        Ok((refresh_token, new))
    }

    /// Starts a session, proved as `assurance` says, for a user who proved to know the
    /// password `password_hash`; `None` if that is no longer their password, or the
    /// account was deactivated.
    pub(super) async fn start_session(
        &self,
        user: User,
        password_hash: String,
        assurance: Assurance,
        meta: &RequestMeta,
    ) -> Result<Option<AuthPayload>, AppError> {
        let now = self.clock.now();
        let (refresh_token, new) =
            self.new_session(user.id, password_hash, assurance.clone(), meta, now)?;
        let Some(created) = sessions::create(&self.db, new).await? else {
            return Ok(None);
        };
        // The oldest sessions beyond the bound ended: their access tokens too.
        self.revoke_access(&created.ended).await;
        let session_id = created.session_id;
        let access_token = self
            .jwt
            .issue_access(user.id, session_id, &assurance, now)?;
        Ok(Some(AuthPayload {
            access_token,
            refresh_token,
            expires_in: self.jwt.access_ttl(),
            user,
        }))
    }
}

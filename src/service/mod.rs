//! Use cases. Each public method is one GraphQL operation: resolvers parse input, call
//! one of these, and map the result.

pub mod account;
pub mod assurance;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod email_change;
pub mod email_verification;
pub mod health;
mod login_methods;
pub mod mfa;
pub mod new_password;
pub mod outbox;
pub mod passkeys;
pub mod password_change;
pub mod password_reset;
pub mod per_account_limits;
pub mod per_ip_limits;
pub mod reset_queue;
pub mod sessions;
pub mod social;
pub mod users;

use std::{net::IpAddr, sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;

use crate::{
    clock::Clock,
    config::Config,
    domain::{client::ClientKey, password::PasswordPolicy, user::User},
    error::AppError,
    mail::Mailer,
    metrics::Metrics,
    security::{jwt::JwtKeys, password::PasswordHasher, per_ip_limits::IpLimit},
    store::ephemeral::EphemeralStores,
};

use per_account_limits::PerAccountLimits;
use per_ip_limits::IpLimits;

pub use audit::{AuditEvent, AuditLog};

/// Who is asking: recorded on sessions, and the key of per-client limits.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

/// What register, login and refreshToken return.
#[derive(Debug, Clone)]
pub struct AuthPayload {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: Duration,
    pub user: User,
}

/// Everything the use cases need, built once at start-up.
#[derive(Clone)]
pub struct Deps {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    /// Reset tokens, revocations (with the profile cache) and per-account counters.
    pub ephemeral: EphemeralStores,
    pub mailer: Arc<dyn Mailer>,
    pub hasher: PasswordHasher,
    pub jwt: Arc<JwtKeys>,
    pub policy: Arc<PasswordPolicy>,
    pub per_ip_limits: Arc<IpLimits>,
    pub per_account_limits: Arc<PerAccountLimits>,
    pub audit: AuditLog,
    pub metrics: Metrics,
    pub outbox: outbox::Outbox,
    pub clock: Arc<dyn Clock>,
    pub reset_queue: reset_queue::ResetQueue,
    /// Seals TOTP secrets at rest (`mfa::SEAL_PURPOSE`).
    pub second_factor_sealer: Arc<crate::security::sealed::Sealer>,
    /// The relying party of passkey ceremonies (`passkeys::build_webauthn`).
    pub webauthn: Arc<webauthn_rs::Webauthn>,
    /// The identity providers of social login.
    pub social: Arc<crate::social::Providers>,
}

/// Refuses at once what cannot be a token this service issued (empty, or longer than
/// any of ours): `INVALID_TOKEN`, before any lookup.
fn token_shape(token: &str) -> Result<(), AppError> {
    if token.is_empty() || token.len() > 256 {
        Err(AppError::InvalidToken)
    } else {
        Ok(())
    }
}

impl Deps {
    /// The state of a flow in progress (a TOTP enrolment, a login's second step, a
    /// passkey ceremony) under `key`; `None` if unknown or expired. It stays.
    async fn flow<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<T>, AppError> {
        match self.ephemeral.flows.get_flow(key, now).await? {
            Some(json) => Ok(Some(
                serde_json::from_str(&json).map_err(AppError::internal)?,
            )),
            None => Ok(None),
        }
    }

    /// Ends the flow under `key`: of concurrent callers on any instance, exactly one
    /// gets `true` (and goes on).
    async fn finish_flow(
        &self,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, AppError> {
        Ok(self.ephemeral.flows.take_flow(key, now).await?.is_some())
    }

    /// What per-client limits count this request under: the one place a client key is
    /// made from an address.
    fn client_key(&self, meta: &RequestMeta) -> ClientKey {
        ClientKey::new(meta.ip, self.config.rate_limit.ipv6_prefix)
    }

    /// Counts one mutation, and for some operations one more of their own class,
    /// against the caller's per-IP budgets.
    async fn check_ip_limits(
        &self,
        meta: &RequestMeta,
        class: Option<IpLimit>,
    ) -> Result<(), AppError> {
        let client = self.client_key(meta);
        let classes: Vec<IpLimit> = std::iter::once(IpLimit::Mutation).chain(class).collect();
        let refused = self.per_ip_limits.check(client, &classes).await;
        match refused {
            None => Ok(()),
            Some((limit, retry_after)) => {
                self.metrics.rate_limited(limit.as_str());
                self.audit(AuditEvent::RateLimited, None, Some(meta)).await;
                Err(AppError::RateLimited { retry_after })
            }
        }
    }

    async fn audit(
        &self,
        event: AuditEvent,
        user_id: Option<uuid::Uuid>,
        meta: Option<&RequestMeta>,
    ) {
        self.audit
            .record(event, user_id, meta, self.clock.now())
            .await;
    }

    /// Makes the access tokens of these sessions fail at once. A failure here is logged:
    /// the sessions are already revoked in the database, so no refresh token of theirs
    /// works, and their access tokens expire on their own.
    async fn revoke_access(&self, session_ids: &[uuid::Uuid]) {
        if session_ids.is_empty() {
            return;
        }
        let until = self.jwt.latest_expiry(self.clock.now());
        if let Err(error) = self
            .ephemeral
            .revocations
            .revoke_sessions(session_ids, until)
            .await
        {
            tracing::error!(error = %format!("{error:#}"), "could not add sessions to the revocation set");
        }
    }
}

/// The use cases, one value per area.
#[derive(Clone)]
pub struct Services {
    pub account: account::AccountService,
    pub assurance: assurance::AssuranceService,
    pub auth: auth::AuthService,
    pub email_change: email_change::EmailChangeService,
    pub email_verification: email_verification::EmailVerificationService,
    pub health: health::HealthService,
    pub mfa: mfa::MfaService,
    pub passkeys: passkeys::PasskeyService,
    pub password_change: password_change::PasswordChangeService,
    pub password_reset: password_reset::PasswordResetService,
    pub sessions: sessions::SessionService,
    pub social: social::SocialService,
    pub users: users::UserService,
}

impl Services {
    pub fn metrics(&self) -> Metrics {
        self.users.metrics()
    }

    pub fn new(deps: &Deps) -> Self {
        Self {
            account: account::AccountService::new(deps.clone()),
            assurance: assurance::AssuranceService::new(deps.clone()),
            auth: auth::AuthService::new(deps.clone()),
            email_change: email_change::EmailChangeService::new(deps.clone()),
            email_verification: email_verification::EmailVerificationService::new(deps.clone()),
            health: health::HealthService::new(deps.clone()),
            mfa: mfa::MfaService::new(deps.clone()),
            passkeys: passkeys::PasskeyService::new(deps.clone()),
            password_change: password_change::PasswordChangeService::new(deps.clone()),
            password_reset: password_reset::PasswordResetService::new(deps.clone()),
            sessions: sessions::SessionService::new(deps.clone()),
            social: social::SocialService::new(deps.clone()),
            users: users::UserService::new(deps.clone()),
        }
    }
}

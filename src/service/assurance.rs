//! Sessions carry their assurance: who is calling (a verified access token of a live
//! session, with the assurance it states); the one guard of sensitive operations
//! (fresh within `REAUTH_MAX_AGE`, `aal2` where a second factor is on); and
//! `reauthenticate`, which proves a credential again on the same session.

use secrecy::{ExposeSecret, SecretString};

use super::{
    AuditEvent, Deps, RequestMeta,
    mfa::{SecondFactor, with_second_factor},
};
use crate::{
    domain::user::User,
    domain::{
        assurance::{Aal, Assurance, Method},
        email::Email,
        password,
    },
    error::AppError,
    security::password::{HashPlace, Verification},
    store::{sessions, users},
};

/// The caller of an operation that needs a signed-in user: the claims of a valid
/// access token whose session is not revoked.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: uuid::Uuid,
    pub session_id: uuid::Uuid,
    pub assurance: Assurance,
}

/// What a sensitive operation asks of the caller's session, beyond a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `aal2` when the account has a second factor (`changePassword`).
    SecondFactor,
    /// "fresh+": a credential proved within `REAUTH_MAX_AGE`, and `aal2` when the
    /// account has a second factor.
    FreshPlus,
}

impl Deps {
    /// The caller behind `bearer`, if their session meets `need`: the one guard every
    /// sensitive resolver goes through. `INSUFFICIENT_AAL` comes before
    /// `REAUTHENTICATION_REQUIRED`: proving the second factor again answers both.
    pub(super) async fn sensitive_caller(
        &self,
        bearer: Option<&str>,
        need: Need,
    ) -> Result<Caller, AppError> {
        let caller = self.caller(bearer).await?;
        if caller.assurance.aal != Aal::Aal2 && self.has_second_factor(caller.user_id).await? {
            return Err(AppError::InsufficientAal);
        }
        let max_age = self.config.account.reauth_max_age;
        if need == Need::FreshPlus && !caller.assurance.is_fresh(self.clock.now(), max_age) {
            return Err(AppError::ReauthenticationRequired { max_age });
        }
        Ok(caller)
    }

    /// The start of every fresh+ mutation: counted against the caller's per-IP budgets,
    /// then the guard; the caller, their user and address.
    pub(super) async fn fresh_plus_mutation(
        &self,
        bearer: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(Caller, User, Email), AppError> {
        self.check_ip_limits(meta, None).await?;
        let caller = self.sensitive_caller(bearer, Need::FreshPlus).await?;
        let (user, email) = self.caller_account(&caller).await?;
        Ok((caller, user, email))
    }

    /// Whether the account has a second factor on: TOTP. A passkey is a way to sign
    /// in (`aal2` on its own), not a second step a password login must take, so it
    /// does not make `aal1` sessions of the account insufficient.
    async fn has_second_factor(&self, user_id: uuid::Uuid) -> Result<bool, AppError> {
        self.has_totp(user_id).await
    }

    /// The caller behind `bearer`, or `Unauthenticated`.
    pub(super) async fn caller(&self, bearer: Option<&str>) -> Result<Caller, AppError> {
        let token = bearer.ok_or(AppError::Unauthenticated)?;
        let claims = self
            .jwt
            .verify_access(token, self.clock.now())
            .ok_or(AppError::Unauthenticated)?;
        if self.session_revoked(claims.sid).await? {
            return Err(AppError::Unauthenticated);
        }
        Ok(Caller {
            user_id: claims.sub,
            session_id: claims.sid,
            assurance: claims.assurance(),
        })
    }

    /// The active user a caller speaks for, and their address.
    pub(super) async fn caller_account(&self, caller: &Caller) -> Result<(User, Email), AppError> {
        let user = users::find_by_id(&self.db, caller.user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(AppError::Unauthenticated)?;
        let email =
            Email::parse(&user.email).map_err(|m| AppError::internal(anyhow::anyhow!(m)))?;
        Ok((user, email))
    }

    /// Lets one credential check on `email`'s account start, from this client, the same
    /// way for login, reauthenticate and changePassword: a hashing place is taken first
    /// (refused for want of one: not counted), then the attempt is counted against the
    /// back-off before anything is checked (aliases and batches cannot run more attempts
    /// than the budget, even concurrently). Counted as a throttled login when refused.
    pub(super) async fn admit_credential_check(
        &self,
        email: &Email,
        user_id: Option<uuid::Uuid>,
        meta: &RequestMeta,
    ) -> Result<HashPlace, AppError> {
        let client = self.client_key(meta);
        let place = match self.hasher.reserve(client) {
            Ok(place) => place,
            Err(busy) => {
                self.metrics.login("throttled");
                self.metrics.rate_limited("password_hashing");
                return Err(busy.into());
            }
        };
        if let Err(refused) = self.per_account_limits.begin_login(email, client).await {
            self.metrics.login("throttled");
            self.metrics.rate_limited("login_account");
            self.audit(AuditEvent::LoginThrottled, user_id, Some(meta))
                .await;
            return Err(refused.into());
        }
        Ok(place)
    }

    /// The revocation set answers without touching the database when it is sure; when
    /// it is not (its memory may be incomplete and Redis has no mark, or Redis cannot
    /// be reached), the session row answers instead: slower, and never fails open.
    pub(super) async fn session_revoked(&self, session_id: uuid::Uuid) -> Result<bool, AppError> {
        let now = self.clock.now();
        match self
            .ephemeral
            .revocations
            .is_session_revoked(session_id, now)
            .await
        {
            Ok(Some(revoked)) => Ok(revoked),
            Ok(None) => Ok(sessions::is_revoked(&self.db, session_id).await?),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "revocation set unreachable; asking the database");
                Ok(sessions::is_revoked(&self.db, session_id).await?)
            }
        }
    }
}

/// One credential proved again; exactly one is given.
pub enum Proof {
    Password(SecretString),
    TotpCode(String),
    RecoveryCode(String),
    Passkey {
        ceremony_id: String,
        credential: serde_json::Value,
    },
}

/// A new access token for the same session, and its assurance.
pub struct Reauthenticated {
    pub access_token: String,
    pub expires_in: std::time::Duration,
    pub assurance: Assurance,
}

#[derive(Clone)]
pub struct AssuranceService {
    deps: Deps,
}

impl AssuranceService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// A failed reauthentication: counted and audited like a failed login.
    async fn failed(&self, user_id: uuid::Uuid, meta: &RequestMeta) -> AppError {
        self.deps.metrics.login("failed");
        self.deps
            .audit(AuditEvent::LoginFailed, Some(user_id), Some(meta))
            .await;
        AppError::InvalidCredentials
    }

    /// Proves a credential again on the caller's session: its `auth_time` becomes now,
    /// and a new access token carries it. A failure counts against the account's login
    /// back-off, from this client, like a failed login.
    #[tracing::instrument(skip_all)]
    pub async fn reauthenticate(
        &self,
        bearer: Option<&str>,
        proof: Proof,
        meta: &RequestMeta,
    ) -> Result<Reauthenticated, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        let caller = deps.caller(bearer).await?;
        let (user, email) = deps.caller_account(&caller).await?;
        let place = deps
            .admit_credential_check(&email, Some(user.id), meta)
            .await?;
        let now = deps.clock.now();
        let second = match proof {
            Proof::Password(password) => {
                let stored = users::find_credential(&deps.db, email.as_str())
                    .await?
                    .filter(|c| c.user.id == user.id)
                    .map(|c| c.password_hash)
                    .filter(|h| !h.is_empty());
                let password = password::normalise(password.expose_secret());
                let valid = matches!(
                    place.verify(password, stored).await?,
                    Verification::Valid { .. }
                );
                if !valid {
                    return Err(self.failed(user.id, meta).await);
                }
                None
            }
            // No hash to compute: the place goes back at once.
            Proof::TotpCode(code) => {
                drop(place);
                Some(SecondFactor::TotpCode(code))
            }
            Proof::RecoveryCode(code) => {
                drop(place);
                Some(SecondFactor::RecoveryCode(code))
            }
            Proof::Passkey {
                ceremony_id,
                credential,
            } => {
                drop(place);
                Some(SecondFactor::Passkey {
                    ceremony_id,
                    credential,
                })
            }
        };
        let assurance = match second {
            None => {
                let mut assurance = Assurance {
                    auth_time: now,
                    ..caller.assurance.clone()
                };
                if !assurance.amr.contains(&Method::Pwd) {
                    assurance.amr.insert(0, Method::Pwd);
                }
                assurance
            }
            Some(factor) => match deps.check_second_factor(&user, &factor, meta).await {
                Ok(method) => with_second_factor(&caller.assurance.amr, method, now),
                Err(AppError::InvalidCredentials) => {
                    return Err(self.failed(user.id, meta).await);
                }
                Err(other) => return Err(other),
            },
        };
        if !sessions::reauthenticated(&deps.db, caller.session_id, user.id, &assurance, now).await?
        {
            return Err(AppError::Unauthenticated);
        }
        deps.per_account_limits
            .login_succeeded(&email, deps.client_key(meta))
            .await;
        deps.audit(AuditEvent::Reauthenticated, Some(user.id), Some(meta))
            .await;
        let access_token = deps
            .jwt
            .issue_access(user.id, caller.session_id, &assurance, now)?;
        Ok(Reauthenticated {
            access_token,
            expires_in: deps.jwt.access_ttl(),
            assurance,
        })
    }
}

//! Second factors: TOTP enrolment, recovery codes, and the second step of a login
//! (`MFA_REQUIRED`, then `verifyMfa`). The checks of a TOTP or recovery code are shared
//! with `reauthenticate`.
//!
//! - A pending enrolment lives in the flow store (sealed secret, 10 minutes), never
//!   as a half-enrolled row; the first code turns TOTP on.
//! - A code is accepted only for a step later than the last accepted one, by one
//!   conditional update: no replay, on any instance, the enrolment's code included.
//! - The second step of a login is an `mfaToken` (256 bits, 5 minutes) in the flow
//!   store; it dies after 5 wrong codes and is taken atomically on success. No access
//!   or refresh token exists before.
//! - Ten wrong codes in a row on an account lock its second step for 15 minutes and
//!   mail the owner.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuditEvent, AuthPayload, Deps, RequestMeta};
use crate::{
    domain::{
        assurance::{Aal, Assurance, Method},
        user::User,
    },
    error::AppError,
    mail::templates,
    security::{opaque_token, totp},
    store::{
        db::begin_write,
        second_factors::{self, StoredTotp},
        sessions::{self, RevokeReason},
        users,
    },
};

/// The purpose label of the key TOTP secrets are sealed under.
pub const SEAL_PURPOSE: &str = "totp-secret";
pub const ENROLMENT_TTL: Duration = Duration::from_secs(600);
pub const MFA_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Wrong codes one `mfaToken` or enrolment survives.
pub const WRONG_CODES_PER_FLOW: u64 = 5;
/// Wrong codes in a row that lock an account's second step, and for how long.
pub const WRONG_CODES_TO_LOCK: u32 = 10;
pub const LOCK_FOR: Duration = Duration::from_secs(900);

/// A second factor as presented.
pub enum SecondFactor {
    TotpCode(String),
    RecoveryCode(String),
    /// An assertion of a ceremony begun with `beginPasskeyLogin`.
    Passkey {
        ceremony_id: String,
        credential: serde_json::Value,
    },
}

/// What `beginTotpEnrollment` returns.
pub struct TotpEnrollment {
    pub enrollment_id: String,
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_code_svg: String,
    pub expires_at: DateTime<Utc>,
}

pub struct MfaEnabled {
    pub recovery_codes: Vec<String>,
    pub auth: AuthPayload,
}

pub struct MfaStatus {
    pub totp_enabled: bool,
    pub passkey_count: u64,
    pub recovery_codes_remaining: u64,
}

/// A pending enrolment, as kept in the flow store.
#[derive(Serialize, Deserialize)]
struct PendingEnrolment {
    user_id: Uuid,
    /// The secret, sealed and bound to the user.
    secret: String,
}

/// The second step of a login, as kept in the flow store.
#[derive(Serialize, Deserialize)]
struct Challenge {
    user_id: Uuid,
    /// The first factor's methods (`pwd`, `fed`).
    amr: Vec<String>,
    /// SHA-256 of the password hash the first step checked: the session starts only if
    /// it is still the user's (no hash leaves the database).
    credential: String,
}

fn enrolment_key(id: &str) -> String {
    format!("totp-enrolment:{}", opaque_token::digest(id))
}

fn challenge_key(token: &str) -> String {
    format!("mfa:{}", opaque_token::digest(token))
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or_default()
}

fn unix_secs(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp()).unwrap_or(0)
}

impl Deps {
    /// The account's second factors (`mfaStatus`, `myData`).
    pub(super) async fn mfa_status(&self, user_id: Uuid) -> Result<MfaStatus, AppError> {
        Ok(MfaStatus {
            totp_enabled: self.has_totp(user_id).await?,
            passkey_count: self.passkey_count(user_id).await?,
            recovery_codes_remaining: second_factors::recovery_codes_left(&self.db, user_id)
                .await?,
        })
    }

    /// Whether the account has TOTP on.
    pub(super) async fn has_totp(&self, user_id: Uuid) -> Result<bool, AppError> {
        Ok(second_factors::has_totp(&self.db, user_id).await?)
    }

    /// The second step of a login whose first factor (`amr`) was just proved for
    /// `user`, who has TOTP on: an `mfaToken`, and no tokens.
    pub(super) async fn mfa_challenge(
        &self,
        user_id: Uuid,
        password_hash: &str,
        amr: &[Method],
        meta: &RequestMeta,
    ) -> AppError {
        let now = self.clock.now();
        let token = opaque_token::generate();
        let expires_at = expiry(now, MFA_TOKEN_TTL);
        let challenge = Challenge {
            user_id,
            amr: amr.iter().map(|m| m.as_str().to_owned()).collect(),
            credential: opaque_token::digest(password_hash),
        };
        let stored = match serde_json::to_string(&challenge) {
            Ok(json) => json,
            Err(error) => return AppError::internal(error),
        };
        if let Err(error) = self
            .ephemeral
            .flows
            .put_flow(&challenge_key(&token), &stored, expires_at)
            .await
        {
            return AppError::internal(error.context("store the second step of a login"));
        }
        let mut methods = vec!["TOTP", "RECOVERY_CODE"];
        match self.passkey_count(user_id).await {
            Ok(0) => {}
            Ok(_) => methods.push("PASSKEY"),
            Err(error) => return error,
        }
        self.metrics.login("mfa_required");
        self.audit(AuditEvent::MfaChallengeIssued, Some(user_id), Some(meta))
            .await;
        AppError::MfaRequired {
            mfa_token: token,
            methods,
            expires_at,
        }
    }

    /// Checks a second factor of `user_id`'s account, counting a wrong code (and locking
    /// the account's second step at the tenth in a row). `Ok(method)` when it holds;
    /// `INVALID_CREDENTIALS` when it does not (or the account has no TOTP);
    /// `RATE_LIMITED` while locked. A passkey needs no TOTP, cannot be guessed, and
    /// neither counts towards the lock nor is stopped by it; its ceremony is
    /// `INVALID_TOKEN` when unknown, expired or used.
    pub(super) async fn check_second_factor(
        &self,
        user: &User,
        factor: &SecondFactor,
        meta: &RequestMeta,
    ) -> Result<Method, AppError> {
        if let SecondFactor::Passkey {
            ceremony_id,
            credential,
        } = factor
        {
            self.check_passkey_assertion(
                ceremony_id,
                credential,
                Some(user.id),
                "second_factor",
                meta,
            )
            .await?;
            self.mfa_metric("passkey", "verified");
            self.audit(AuditEvent::PasskeyLogin, Some(user.id), Some(meta))
                .await;
            return Ok(Method::Pop);
        }
        let now = self.clock.now();
        let Some(stored) = second_factors::find_totp(&self.db, user.id).await? else {
            return Err(AppError::InvalidCredentials);
        };
        if let Some(until) = stored.locked_until.filter(|until| *until > now) {
            self.mfa_metric("any", "locked");
            let retry_after = (until - now).to_std().unwrap_or(LOCK_FOR);
            return Err(AppError::RateLimited { retry_after });
        }
        let outcome = match factor {
            SecondFactor::TotpCode(code) => self.check_totp(user.id, &stored, code, now).await?,
            SecondFactor::Passkey { .. } => Err("wrong"),
            SecondFactor::RecoveryCode(code) => {
                let digest = totp::recovery_code_digest(code);
                if second_factors::use_recovery_code(&self.db, user.id, &digest, now).await? {
                    self.recovery_code_used(user, meta).await?;
                    Ok(Method::Rec)
                } else {
                    Err("wrong")
                }
            }
        };
        let method_name = match factor {
            SecondFactor::TotpCode(_) => "totp",
            SecondFactor::RecoveryCode(_) => "recovery_code",
            SecondFactor::Passkey { .. } => "passkey",
        };
        match outcome {
            Ok(method) => {
                self.mfa_metric(method_name, "verified");
                let event = match method {
                    Method::Rec => AuditEvent::MfaVerifiedRecoveryCode,
                    _ => AuditEvent::MfaVerifiedTotp,
                };
                self.audit(event, Some(user.id), Some(meta)).await;
                Ok(method)
            }
            Err(reason) => {
                self.mfa_metric(method_name, reason);
                let event = if reason == "replay" {
                    AuditEvent::MfaFailedReplay
                } else {
                    AuditEvent::MfaFailedWrong
                };
                self.audit(event, Some(user.id), Some(meta)).await;
                let lock_until = expiry(now, LOCK_FOR);
                let (_, locked) = second_factors::record_failure(
                    &self.db,
                    user.id,
                    WRONG_CODES_TO_LOCK,
                    lock_until,
                )
                .await?;
                if locked {
                    self.locked_out(user, meta).await?;
                }
                Err(AppError::InvalidCredentials)
            }
        }
    }

    /// A TOTP code: `Ok(otp)`, or why not (`wrong`, `replay`).
    async fn check_totp(
        &self,
        user_id: Uuid,
        stored: &StoredTotp,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Method, &'static str>, AppError> {
        let secret = self.open_secret(user_id, &stored.sealed_secret)?;
        let Some(step) = totp::matching_step(&secret, code, unix_secs(now)) else {
            return Ok(Err("wrong"));
        };
        if step <= stored.last_step || !second_factors::accept_step(&self.db, user_id, step).await?
        {
            return Ok(Err("replay"));
        }
        if !self.second_factor_sealer.is_current(&stored.sealed_secret) {
            // Sealed under a secret since rotated away: seal it under the current one
            // while `SECRET_KEY_PREVIOUS` still opens it.
            let base32 = totp::to_base32(&secret);
            let sealed = self.second_factor_sealer.seal(user_id.as_bytes(), &base32);
            second_factors::reseal_totp(&self.db, user_id, &stored.sealed_secret, sealed).await?;
        }
        Ok(Ok(Method::Otp))
    }

    fn open_secret(&self, user_id: Uuid, sealed: &str) -> Result<Vec<u8>, AppError> {
        let base32 = self
            .second_factor_sealer
            .open(user_id.as_bytes(), sealed)
            .map_err(|e| AppError::internal(anyhow::anyhow!("TOTP secret does not open: {e}")))?;
        totp::from_base32(&base32)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("TOTP secret malformed")))
    }

    async fn recovery_code_used(&self, user: &User, meta: &RequestMeta) -> Result<(), AppError> {
        let left = second_factors::recovery_codes_left(&self.db, user.id).await?;
        let mail = templates::recovery_code_used(&self.config.service_name, &user.email, left);
        self.queue_mail("recovery_code_used", mail).await?;
        self.audit(AuditEvent::RecoveryCodeUsed, Some(user.id), Some(meta))
            .await;
        Ok(())
    }

    async fn locked_out(&self, user: &User, meta: &RequestMeta) -> Result<(), AppError> {
        let minutes = LOCK_FOR.as_secs() / 60;
        let mail = templates::second_factor_locked(&self.config.service_name, &user.email, minutes);
        self.queue_mail("second_factor_locked", mail).await?;
        self.audit(AuditEvent::MfaLocked, Some(user.id), Some(meta))
            .await;
        Ok(())
    }

    /// Queues one mail on its own.
    async fn queue_mail(
        &self,
        kind: &'static str,
        mail: crate::domain::mail::OutgoingMail,
    ) -> Result<(), AppError> {
        let now = self.clock.now();
        self.outbox.enqueue(&self.db, kind, mail, None, now).await?;
        self.outbox.wake();
        Ok(())
    }

    fn mfa_metric(&self, method: &str, result: &str) {
        self.metrics
            .counter(
                "identity_mfa_total",
                &[("method", method), ("result", result)],
            )
            .increment(1);
    }
}

/// The assurance after a second factor on top of `first`: `aal2`, the first factor's
/// methods, the second's (once), and `mfa`.
pub fn with_second_factor(first: &[Method], second: Method, now: DateTime<Utc>) -> Assurance {
    let mut amr: Vec<Method> = first
        .iter()
        .copied()
        .filter(|m| !matches!(m, Method::Otp | Method::Rec | Method::Mfa))
        .collect();
    if !amr.contains(&second) {
        amr.push(second);
    }
    amr.push(Method::Mfa);
    Assurance {
        aal: Aal::Aal2,
        amr,
        auth_time: now,
    }
}

#[derive(Clone)]
pub struct MfaService {
    deps: Deps,
}

impl MfaService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Starts a TOTP enrolment for a fresh+ caller without TOTP: a new secret, kept
    /// (sealed) in the flow store for 10 minutes until a first code confirms it.
    #[tracing::instrument(skip_all)]
    pub async fn begin_totp_enrollment(
        &self,
        bearer: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<TotpEnrollment, AppError> {
        let deps = &self.deps;
        let (_, user, email) = deps.fresh_plus_mutation(bearer, meta).await?;
        if deps.has_totp(user.id).await? {
            return Err(AppError::Conflict {
                reason: "TOTP_ALREADY_ENABLED",
            });
        }
        let secret = totp::new_secret();
        let base32 = totp::to_base32(&secret);
        let otpauth_uri = totp::otpauth_uri(&secret, &deps.config.service_name, email.as_str())?;
        let qr_code_svg = totp::qr_svg(&otpauth_uri)?;
        let now = deps.clock.now();
        let expires_at = expiry(now, ENROLMENT_TTL);
        let enrollment_id = opaque_token::generate();
        let pending = PendingEnrolment {
            user_id: user.id,
            secret: deps
                .second_factor_sealer
                .seal(&enrolment_aad(user.id), &base32),
        };
        deps.ephemeral
            .flows
            .put_flow(
                &enrolment_key(&enrollment_id),
                &serde_json::to_string(&pending).map_err(AppError::internal)?,
                expires_at,
            )
            .await
            .context("store the enrolment")?;
        deps.audit(AuditEvent::TotpEnrollmentStarted, Some(user.id), Some(meta))
            .await;
        Ok(TotpEnrollment {
            enrollment_id,
            secret: base32,
            otpauth_uri,
            qr_code_svg,
            expires_at,
        })
    }

    /// Confirms an enrolment with a first code: TOTP on (that code's step the last
    /// accepted), 10 recovery codes (shown once), the calling session replaced by an
    /// `aal2` one, every other session ended, and a mail.
    #[tracing::instrument(skip_all)]
    pub async fn confirm_totp_enrollment(
        &self,
        bearer: Option<&str>,
        enrollment_id: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<MfaEnabled, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        let caller = deps.caller(bearer).await?;
        let (user, _) = deps.caller_account(&caller).await?;
        super::token_shape(enrollment_id)?;
        let key = enrolment_key(enrollment_id);
        let now = deps.clock.now();
        let pending: PendingEnrolment = match deps.flow(&key, now).await? {
            Some(state) => state,
            None => return Err(AppError::InvalidToken),
        };
        if pending.user_id != user.id {
            return Err(AppError::InvalidToken);
        }
        let base32 = deps
            .second_factor_sealer
            .open(&enrolment_aad(user.id), &pending.secret)
            .map_err(|e| AppError::internal(anyhow::anyhow!("enrolment does not open: {e}")))?;
        let secret = totp::from_base32(&base32)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("enrolment secret malformed")))?;
        let Some(step) = totp::matching_step(&secret, code, unix_secs(now)) else {
            deps.mfa_metric("totp", "wrong");
            deps.audit(AuditEvent::MfaFailedWrong, Some(user.id), Some(meta))
                .await;
            let failures = deps
                .ephemeral
                .counters
                .count_in_window(&format!("{key}:wrong"), now, ENROLMENT_TTL)
                .await?;
            if failures >= WRONG_CODES_PER_FLOW {
                deps.finish_flow(&key, now).await?;
            }
            return Err(AppError::InvalidCredentials);
        };
        // Exactly one confirmation of an enrolment goes on.
        if !deps.finish_flow(&key, now).await? {
            return Err(AppError::InvalidToken);
        }
        let Some(credential) = users::find_credential(&deps.db, &user.email)
            .await?
            .filter(|c| c.user.id == user.id)
        else {
            return Err(AppError::Unauthenticated);
        };
        let codes = totp::new_recovery_codes();
        let digests = codes
            .iter()
            .map(|c| totp::recovery_code_digest(c))
            .collect();
        let assurance = with_second_factor(&caller.assurance.amr, Method::Otp, now);
        let (refresh_token, new_session) = deps.new_session(
            user.id,
            credential.password_hash,
            assurance.clone(),
            meta,
            now,
        )?;
        let mail = templates::totp_enabled(&deps.config.service_name, &user.email);

        let txn = begin_write(&deps.db)
            .await
            .context("begin TOTP enrolment")?;
        let sealed = deps.second_factor_sealer.seal(user.id.as_bytes(), &base32);
        if !second_factors::enable_totp(&txn, user.id, sealed, step, now).await? {
            return Err(AppError::Conflict {
                reason: "TOTP_ALREADY_ENABLED",
            });
        }
        second_factors::replace_recovery_codes(&txn, user.id, digests, now).await?;
        let mut ended =
            sessions::revoke_all_for_user(&txn, user.id, now, RevokeReason::SecondFactorChange)
                .await?;
        let created = sessions::create_in(&txn, new_session).await?;
        deps.outbox
            .enqueue(&txn, "totp_enabled", mail, None, now)
            .await?;
        txn.commit().await.context("commit TOTP enrolment")?;
        deps.outbox.wake();
        ended.extend(created.ended);
        deps.revoke_access(&ended).await;
        deps.mfa_metric("totp", "enabled");
        deps.audit(AuditEvent::TotpEnabled, Some(user.id), Some(meta))
            .await;
        let access_token = deps
            .jwt
            .issue_access(user.id, created.session_id, &assurance, now)?;
        Ok(MfaEnabled {
            recovery_codes: codes,
            auth: AuthPayload {
                access_token,
                refresh_token,
                expires_in: deps.jwt.access_ttl(),
                user,
            },
        })
    }

    /// Turns TOTP off (fresh+, so `aal2`): its secret and recovery codes are deleted,
    /// every other session ends, and the owner is mailed.
    #[tracing::instrument(skip_all)]
    pub async fn disable_totp(
        &self,
        bearer: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<bool, AppError> {
        let deps = &self.deps;
        let (caller, user, _) = deps.fresh_plus_mutation(bearer, meta).await?;
        let now = deps.clock.now();
        let mail = templates::totp_disabled(&deps.config.service_name, &user.email);
        let txn = begin_write(&deps.db).await.context("begin TOTP removal")?;
        if !second_factors::disable_totp(&txn, user.id).await? {
            return Err(AppError::Conflict {
                reason: "TOTP_NOT_ENABLED",
            });
        }
        let idle = deps.config.tokens.refresh_idle_ttl;
        let ended = sessions::revoke_of_user(
            &txn,
            user.id,
            None,
            Some(caller.session_id),
            now,
            idle,
            RevokeReason::SecondFactorChange,
        )
        .await?;
        deps.outbox
            .enqueue(&txn, "totp_disabled", mail, None, now)
            .await?;
        txn.commit().await.context("commit TOTP removal")?;
        deps.outbox.wake();
        deps.revoke_access(&ended).await;
        deps.mfa_metric("totp", "disabled");
        deps.audit(AuditEvent::TotpDisabled, Some(user.id), Some(meta))
            .await;
        Ok(true)
    }

    /// New recovery codes (fresh+); the old ones stop working.
    #[tracing::instrument(skip_all)]
    pub async fn regenerate_recovery_codes(
        &self,
        bearer: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Vec<String>, AppError> {
        let deps = &self.deps;
        let (_, user, _) = deps.fresh_plus_mutation(bearer, meta).await?;
        if !deps.has_totp(user.id).await? {
            return Err(AppError::Conflict {
                reason: "TOTP_NOT_ENABLED",
            });
        }
        let now = deps.clock.now();
        let codes = totp::new_recovery_codes();
        let digests = codes
            .iter()
            .map(|c| totp::recovery_code_digest(c))
            .collect();
        let mail = templates::recovery_codes_regenerated(&deps.config.service_name, &user.email);
        let txn = begin_write(&deps.db)
            .await
            .context("begin recovery codes")?;
        second_factors::replace_recovery_codes(&txn, user.id, digests, now).await?;
        deps.outbox
            .enqueue(&txn, "recovery_codes_regenerated", mail, None, now)
            .await?;
        txn.commit().await.context("commit recovery codes")?;
        deps.outbox.wake();
        deps.audit(
            AuditEvent::RecoveryCodesRegenerated,
            Some(user.id),
            Some(meta),
        )
        .await;
        Ok(codes)
    }

    pub async fn status(&self, bearer: Option<&str>) -> Result<MfaStatus, AppError> {
        let deps = &self.deps;
        let caller = deps.caller(bearer).await?;
        deps.mfa_status(caller.user_id).await
    }

    /// Completes a login that answered `MFA_REQUIRED`: with a right second factor, an
    /// `aal2` session. A wrong factor counts against the token (5) and the account (10
    /// in a row lock it).
    #[tracing::instrument(skip_all)]
    pub async fn verify(
        &self,
        mfa_token: &str,
        factor: SecondFactor,
        meta: &RequestMeta,
    ) -> Result<AuthPayload, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        super::token_shape(mfa_token)?;
        let key = challenge_key(mfa_token);
        let now = deps.clock.now();
        let challenge: Challenge = match deps.flow(&key, now).await? {
            Some(state) => state,
            None => {
                deps.mfa_metric("any", "expired");
                deps.audit(AuditEvent::MfaFailedExpired, None, Some(meta))
                    .await;
                return Err(AppError::InvalidToken);
            }
        };
        let Some(user) = users::find_by_id(&deps.db, challenge.user_id)
            .await?
            .filter(|u| u.is_active)
        else {
            return Err(AppError::InvalidToken);
        };
        let method = match deps.check_second_factor(&user, &factor, meta).await {
            Ok(method) => method,
            Err(AppError::InvalidCredentials) => {
                let wrong = deps
                    .ephemeral
                    .counters
                    .count_in_window(&format!("{key}:wrong"), now, MFA_TOKEN_TTL)
                    .await?;
                if wrong >= WRONG_CODES_PER_FLOW {
                    deps.finish_flow(&key, now).await?;
                }
                return Err(AppError::InvalidCredentials);
            }
            Err(other) => return Err(other),
        };
        // One success per token, on any instance.
        if !deps.finish_flow(&key, now).await? {
            return Err(AppError::InvalidToken);
        }
        let Some(credential) = users::find_credential(&deps.db, &user.email)
            .await?
            .filter(|c| {
                c.user.id == user.id
                    && opaque_token::digest(&c.password_hash) == challenge.credential
            })
        else {
            // The password changed since the first step.
            return Err(AppError::InvalidToken);
        };
        let first = Assurance::from_stored("aal1", &challenge.amr.join(" "), now).amr;
        let assurance = with_second_factor(&first, method, now);
        let Some(payload) = deps
            .start_session(credential.user, credential.password_hash, assurance, meta)
            .await?
        else {
            return Err(AppError::InvalidToken);
        };
        deps.metrics.login("succeeded");
        deps.audit(AuditEvent::LoginSucceeded, Some(user.id), Some(meta))
            .await;
        Ok(payload)
    }
}

fn enrolment_aad(user_id: Uuid) -> Vec<u8> {
    [b"enrolment:".as_slice(), user_id.as_bytes()].concat()
}

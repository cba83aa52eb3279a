//! Second factors: TOTP enrolment, recovery codes, and the second step of a login.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::{RequestCtx, assurance::PasskeyAssertionInput, types::AuthPayload};
use crate::{
    error::AppError,
    service::{
        Services,
        mfa::{self, SecondFactor},
    },
};

/// A pending TOTP enrolment: show the QR code (or the secret) once, then confirm with
/// a first code.
#[derive(SimpleObject)]
pub(super) struct TotpEnrollment {
    /// Names the pending enrolment for `confirmTotpEnrollment`.
    pub enrollment_id: ID,
    /// Base32; shown once.
    pub secret: String,
    /// `otpauth://totp/…`, for authenticator apps.
    pub otpauth_uri: String,
    /// An `<svg>` QR code of `otpauthUri`.
    pub qr_code_svg: String,
    /// 10 minutes after it began.
    pub expires_at: DateTime<Utc>,
}

impl From<mfa::TotpEnrollment> for TotpEnrollment {
    fn from(e: mfa::TotpEnrollment) -> Self {
        Self {
            enrollment_id: ID(e.enrollment_id),
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
            qr_code_svg: e.qr_code_svg,
            expires_at: e.expires_at,
        }
    }
}

/// TOTP is on: the recovery codes (shown once) and the session that replaces the
/// calling one.
#[derive(SimpleObject)]
pub(super) struct MfaEnabled {
    /// 10 single-use codes for when the app is lost; shown only here.
    pub recovery_codes: Vec<String>,
    /// The `aal2` session that replaces the calling one.
    pub auth: AuthPayload,
}

/// The caller's second factors.
#[derive(SimpleObject)]
pub(super) struct MfaStatus {
    /// Whether signing in with a password asks for an authenticator code.
    pub totp_enabled: bool,
    /// Passkeys registered to the account.
    pub passkey_count: i32,
    /// Recovery codes not used yet.
    pub recovery_codes_remaining: i32,
}

/// The `mfaToken` from `MFA_REQUIRED` and exactly one second factor.
#[derive(InputObject)]
pub(super) struct VerifyMfaInput {
    /// The token from the `MFA_REQUIRED` error's extensions.
    pub mfa_token: String,
    /// A code from the authenticator app.
    pub totp_code: Option<String>,
    /// One of the recovery codes (each works once).
    pub recovery_code: Option<String>,
    /// A finished `beginPasskeyLogin` ceremony with one of the account's passkeys.
    pub passkey: Option<PasskeyAssertionInput>,
}

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[derive(Default)]
pub(super) struct MfaQuery;

#[Object]
impl MfaQuery {
    /// The caller's second factors.
    async fn mfa_status(&self, ctx: &Context<'_>) -> Result<MfaStatus> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let status = services.mfa.status(req.bearer.as_deref()).await?;
        Ok(MfaStatus {
            totp_enabled: status.totp_enabled,
            passkey_count: count(status.passkey_count),
            recovery_codes_remaining: count(status.recovery_codes_remaining),
        })
    }
}

#[derive(Default)]
pub(super) struct MfaMutation;

#[Object]
impl MfaMutation {
    /// Starts a TOTP enrolment (needs a fresh session; `CONFLICT` with reason
    /// `TOTP_ALREADY_ENABLED` if TOTP is on).
    async fn begin_totp_enrollment(&self, ctx: &Context<'_>) -> Result<TotpEnrollment> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .mfa
            .begin_totp_enrollment(req.bearer.as_deref(), &req.meta)
            .await?
            .into())
    }

    /// Turns TOTP on with a first code from the app: returns 10 single-use recovery
    /// codes (shown once) and a new `aal2` session that replaces the calling one;
    /// every other session is signed out.
    async fn confirm_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "From `beginTotpEnrollment`.")] enrollment_id: ID,
        #[graphql(desc = "The code the authenticator app shows now.")] code: String,
    ) -> Result<MfaEnabled> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let enabled = services
            .mfa
            .confirm_totp_enrollment(req.bearer.as_deref(), &enrollment_id, &code, &req.meta)
            .await?;
        Ok(MfaEnabled {
            recovery_codes: enabled.recovery_codes,
            auth: super::cookies::deliver(ctx, enabled.auth, false),
        })
    }

    /// Turns TOTP off and deletes the recovery codes (fresh, `aal2`); signs out the
    /// other sessions. `CONFLICT` `TOTP_NOT_ENABLED` if it is off.
    async fn disable_totp(&self, ctx: &Context<'_>) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .mfa
            .disable_totp(req.bearer.as_deref(), &req.meta)
            .await?)
    }

    /// Replaces the recovery codes (fresh, `aal2`); the old ones stop working.
    async fn regenerate_recovery_codes(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .mfa
            .regenerate_recovery_codes(req.bearer.as_deref(), &req.meta)
            .await?)
    }

    /// Completes a login that answered `MFA_REQUIRED`, with exactly one second factor.
    /// A wrong one is `INVALID_CREDENTIALS`; the token dies after 5, and 10 in a row
    /// on the account answer `RATE_LIMITED` for 15 minutes.
    async fn verify_mfa(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The `mfaToken` and exactly one second factor.")] input: VerifyMfaInput,
    ) -> Result<AuthPayload> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let given = [
            input.totp_code.is_some(),
            input.recovery_code.is_some(),
            input.passkey.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(AppError::field(
                "input",
                "Give exactly one of totpCode, recoveryCode and passkey.",
            )
            .into());
        }
        let factor = match (input.totp_code, input.recovery_code, input.passkey) {
            (Some(code), ..) => SecondFactor::TotpCode(code),
            (_, Some(code), _) => SecondFactor::RecoveryCode(code),
            (.., Some(passkey)) => SecondFactor::Passkey {
                ceremony_id: passkey.ceremony_id.0,
                credential: passkey.credential.0,
            },
            _ => return Err(AppError::field("input", "A second factor is required.").into()),
        };
        let payload = services
            .mfa
            .verify(&input.mfa_token, factor, &req.meta)
            .await?;
        Ok(super::cookies::deliver(ctx, payload, false))
    }
}

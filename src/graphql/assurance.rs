//! `reauthenticate`: prove a credential again on the calling session.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::RequestCtx;
use crate::{
    error::AppError,
    service::{
        Services,
        assurance::{Proof, Reauthenticated},
    },
};

/// Exactly one credential; otherwise `BAD_USER_INPUT`.
#[derive(InputObject)]
pub(super) struct ReauthenticateInput {
    /// The account's password.
    pub password: Option<String>,
    /// A code from the authenticator app (TOTP on).
    pub totp_code: Option<String>,
    /// One of the recovery codes (each works once).
    pub recovery_code: Option<String>,
    /// A finished `beginPasskeyLogin` ceremony with one of the account's passkeys.
    pub passkey: Option<PasskeyAssertionInput>,
}

/// A finished passkey ceremony: its id, and what `PublicKeyCredential.toJSON()` gave.
#[derive(InputObject)]
pub(super) struct PasskeyAssertionInput {
    /// The `ceremonyId` from `beginPasskeyLogin`.
    pub ceremony_id: ID,
    /// What `PublicKeyCredential.toJSON()` returned.
    pub credential: Json<serde_json::Value>,
}

impl ReauthenticateInput {
    fn into_proof(self) -> Result<Proof, AppError> {
        let given = [
            self.password.is_some(),
            self.totp_code.is_some(),
            self.recovery_code.is_some(),
            self.passkey.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(AppError::field(
                "input",
                "Give exactly one of password, totpCode, recoveryCode and passkey.",
            ));
        }
        Ok(
            match (
                self.password,
                self.totp_code,
                self.recovery_code,
                self.passkey,
            ) {
                (Some(password), ..) => Proof::Password(SecretString::from(password)),
                (_, Some(code), ..) => Proof::TotpCode(code),
                (_, _, Some(code), _) => Proof::RecoveryCode(code),
                (.., Some(passkey)) => Proof::Passkey {
                    ceremony_id: passkey.ceremony_id.0,
                    credential: passkey.credential.0,
                },
                _ => return Err(AppError::field("input", "A credential is required.")),
            },
        )
    }
}

/// A new access token for the same session, proved again just now.
#[derive(SimpleObject)]
#[graphql(name = "ReauthPayload")]
pub(super) struct ReauthPayload {
    /// A new access token of the same session, carrying the new `auth_time`.
    pub access_token: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: i32,
    /// When the credential was proved (the token's `auth_time`).
    pub auth_time: DateTime<Utc>,
    /// The session's assurance level: `aal1` or `aal2`.
    pub acr: String,
}

impl From<Reauthenticated> for ReauthPayload {
    fn from(r: Reauthenticated) -> Self {
        Self {
            access_token: r.access_token,
            expires_in: i32::try_from(r.expires_in.as_secs()).unwrap_or(i32::MAX),
            auth_time: r.assurance.auth_time,
            acr: r.assurance.aal.as_str().to_owned(),
        }
    }
}

#[derive(Default)]
pub(super) struct AssuranceMutation;

#[Object]
impl AssuranceMutation {
    /// Proves a credential again on the calling session: a new access token with a
    /// fresh `auth_time`, for operations that need a recent proof. Failures count
    /// against the account's login back-off.
    async fn reauthenticate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Exactly one credential.")] input: ReauthenticateInput,
    ) -> Result<ReauthPayload> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let proof = input.into_proof()?;
        Ok(services
            .assurance
            .reauthenticate(req.bearer.as_deref(), proof, &req.meta)
            .await?
            .into())
    }
}

//! Passkeys (WebAuthn): `myPasskeys`, registration, discoverable login, rename, remove.

use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::{RequestCtx, assurance::PasskeyAssertionInput, types::AuthPayload};
use crate::service::{
    Services,
    passkeys::{self, PasskeyView},
};

/// A begun ceremony: pass `options.publicKey` to
/// `PublicKeyCredential.parseCreationOptionsFromJSON` (registration) or
/// `parseRequestOptionsFromJSON` (login), then send back the id and
/// `credential.toJSON()`.
#[derive(SimpleObject)]
pub(super) struct PasskeyCeremony {
    /// Single use.
    pub ceremony_id: ID,
    /// `{"publicKey": …}`: WebAuthn Level 3 options in their JSON form.
    pub options: Json<serde_json::Value>,
    /// 5 minutes after it began.
    pub expires_at: DateTime<Utc>,
}

impl From<passkeys::Ceremony> for PasskeyCeremony {
    fn from(c: passkeys::Ceremony) -> Self {
        Self {
            ceremony_id: ID(c.ceremony_id),
            options: Json(c.options),
            expires_at: c.expires_at,
        }
    }
}

/// One of the signed-in user's passkeys (no key material).
#[derive(SimpleObject)]
pub(super) struct Passkey {
    /// Names the passkey for `renamePasskey` and `removePasskey`.
    pub id: ID,
    /// 1 to 64 characters, chosen by the owner.
    pub name: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Its last sign-in or proof; null if never used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether the authenticator reports it backed up (synced).
    pub backed_up: bool,
}

impl From<PasskeyView> for Passkey {
    fn from(p: PasskeyView) -> Self {
        Self {
            id: ID(p.id.to_string()),
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backed_up: p.backed_up,
        }
    }
}

#[derive(Default)]
pub(super) struct PasskeyQuery;

#[Object]
impl PasskeyQuery {
    /// The signed-in user's passkeys, oldest first.
    async fn my_passkeys(&self, ctx: &Context<'_>) -> Result<Vec<Passkey>> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .passkeys
            .mine(req.bearer.as_deref())
            .await?
            .into_iter()
            .map(Passkey::from)
            .collect())
    }
}

#[derive(Default)]
pub(super) struct PasskeyMutation;

#[Object]
impl PasskeyMutation {
    /// Starts adding a passkey (fresh session; `aal2` with TOTP on). At most 10:
    /// `CONFLICT` `TOO_MANY_PASSKEYS` beyond.
    async fn begin_passkey_registration(&self, ctx: &Context<'_>) -> Result<PasskeyCeremony> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .passkeys
            .begin_registration(req.bearer.as_deref(), &req.meta)
            .await?
            .into())
    }

    /// Finishes adding a passkey with what `navigator.credentials.create` gave
    /// (`credential.toJSON()`). `name` defaults to "Passkey". The owner is mailed.
    async fn finish_passkey_registration(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "From `beginPasskeyRegistration`.")] ceremony_id: ID,
        #[graphql(
            desc = "What `PublicKeyCredential.toJSON()` returned after `navigator.credentials.create`."
        )]
        credential: Json<serde_json::Value>,
        #[graphql(desc = "A name for the list (1–64 characters); \"Passkey\" when omitted.")] name: Option<String>,
    ) -> Result<Passkey> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .passkeys
            .finish_registration(
                req.bearer.as_deref(),
                &ceremony_id,
                &credential.0,
                name.as_deref(),
                &req.meta,
            )
            .await?
            .into())
    }

    /// Starts a passkey sign-in that names no account (also for the `passkey` of
    /// `verifyMfa` and `reauthenticate`).
    async fn begin_passkey_login(&self, ctx: &Context<'_>) -> Result<PasskeyCeremony> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services.passkeys.begin_login(&req.meta).await?.into())
    }

    /// Signs in with what `navigator.credentials.get` gave: an `aal2` session, with no
    /// second step even when TOTP is on. Any refused assertion is
    /// `INVALID_CREDENTIALS`; an unknown, expired or used ceremony `INVALID_TOKEN`.
    async fn finish_passkey_login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The ceremony and what `navigator.credentials.get` returned.")]
        input: PasskeyAssertionInput,
    ) -> Result<AuthPayload> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let payload = services
            .passkeys
            .finish_login(&input.ceremony_id, &input.credential.0, &req.meta)
            .await?;
        Ok(super::cookies::deliver(ctx, payload, false))
    }

    /// Renames one of the signed-in user's passkeys (1 to 64 characters).
    async fn rename_passkey(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The passkey's `id`.")] id: ID,
        #[graphql(desc = "The new name (1–64 characters).")] name: String,
    ) -> Result<Passkey> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .passkeys
            .rename(req.bearer.as_deref(), &id, &name, &req.meta)
            .await?
            .into())
    }

    /// Removes one of the signed-in user's passkeys (fresh session; `aal2` with TOTP
    /// on); the owner is mailed. `CONFLICT` `LAST_LOGIN_METHOD` if the account would be
    /// left with no way to sign in.
    async fn remove_passkey(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The passkey's `id`.")] id: ID,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .passkeys
            .remove(req.bearer.as_deref(), &id, &req.meta)
            .await?)
    }
}

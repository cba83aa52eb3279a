//! Social login: the providers, the redirect flow's two mutations, linking and the
//! account's identities.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject, Union};
use chrono::{DateTime, Utc};

use super::{RequestCtx, types::AuthPayload};
use crate::service::{
    Services,
    social::{self, IdentityView, SocialLoginResult},
};

/// A configured identity provider, for a sign-in button.
#[derive(SimpleObject)]
pub(super) struct SocialProvider {
    /// What `startSocialLogin` takes as `provider` (e.g. `google`).
    pub id: String,
    /// What the button shows (e.g. "Google").
    pub name: String,
}

/// Where to send the browser to sign in with a provider.
#[derive(SimpleObject)]
pub(super) struct SocialRedirect {
    /// `{PUBLIC_URL}/oauth/start?flow=…`: navigate the window there (not a fetch).
    pub authorization_url: String,
    /// The flow must reach the provider and come back before then (10 minutes).
    pub expires_at: DateTime<Utc>,
}

impl From<social::SocialRedirect> for SocialRedirect {
    fn from(r: social::SocialRedirect) -> Self {
        Self {
            authorization_url: r.authorization_url,
            expires_at: r.expires_at,
        }
    }
}

/// The provider's address belongs to a verified account: its owner must sign in the
/// usual way and call `linkPendingIdentity` with `linkToken`. Never linked silently.
#[derive(SimpleObject)]
pub(super) struct AccountLinkRequired {
    /// For `linkPendingIdentity`; single use.
    pub link_token: String,
    /// The provider's id.
    pub provider: String,
    /// The account's address, to tell the user which account to sign in to.
    pub email: String,
    /// 10 minutes after the flow finished.
    pub expires_at: DateTime<Utc>,
}

/// What a finished social login gives: a session, or the need to link.
#[derive(Union)]
#[graphql(name = "SocialLoginResult")]
pub(super) enum SocialLoginResultUnion {
    AuthPayload(AuthPayload),
    AccountLinkRequired(AccountLinkRequired),
}

/// A provider identity linked to the signed-in account.
#[derive(SimpleObject)]
pub(super) struct Identity {
    /// Names the identity for `unlinkIdentity`.
    pub id: ID,
    /// The provider's id.
    pub provider: String,
    /// The address the provider gave at the last sign-in; null if none.
    pub email: Option<String>,
    /// When it was linked.
    pub created_at: DateTime<Utc>,
    /// Its last sign-in; null if never used since linking.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<IdentityView> for Identity {
    fn from(i: IdentityView) -> Self {
        Self {
            id: ID(i.id.to_string()),
            provider: i.provider,
            email: i.email,
            created_at: i.created_at,
            last_used_at: i.last_used_at,
        }
    }
}

/// Starts a social login or an identity link.
#[derive(InputObject)]
pub(super) struct StartSocialLoginInput {
    /// A provider's `id` from `socialProviders`.
    pub provider: String,
    /// Where the browser returns, exactly one of `SOCIAL_REDIRECT_URLS`; the answer is
    /// in its fragment: `#code=…` or `#error=…`.
    pub redirect_to: String,
    /// The app's PKCE challenge: base64url(SHA-256(codeVerifier)), 43 characters. Keep
    /// the verifier (e.g. in sessionStorage) for `completeSocialLogin`.
    pub code_challenge: String,
}

impl From<StartSocialLoginInput> for social::StartInput {
    fn from(i: StartSocialLoginInput) -> Self {
        Self {
            provider: i.provider,
            redirect_to: i.redirect_to,
            code_challenge: i.code_challenge,
        }
    }
}

#[derive(Default)]
pub(super) struct SocialQuery;

#[Object]
impl SocialQuery {
    /// The identity providers a user can sign in with.
    async fn social_providers(&self, ctx: &Context<'_>) -> Result<Vec<SocialProvider>> {
        let services = ctx.data::<Services>()?;
        Ok(services
            .social
            .list()
            .into_iter()
            .map(|p| SocialProvider {
                id: p.id,
                name: p.name,
            })
            .collect())
    }

    /// The provider identities linked to the signed-in account, oldest first.
    async fn my_identities(&self, ctx: &Context<'_>) -> Result<Vec<Identity>> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .social
            .mine(req.bearer.as_deref())
            .await?
            .into_iter()
            .map(Identity::from)
            .collect())
    }
}

#[derive(Default)]
pub(super) struct SocialMutation;

#[Object]
impl SocialMutation {
    /// Starts signing in with a provider: navigate to `authorizationUrl`. Unknown
    /// provider or a `redirectTo` not allowed: `BAD_USER_INPUT` on that field.
    async fn start_social_login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider, where to return, and the app's PKCE challenge.")]
        input: StartSocialLoginInput,
    ) -> Result<SocialRedirect> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .social
            .start_login(input.into(), &req.meta)
            .await?
            .into())
    }

    /// Starts connecting a provider to the signed-in account (fresh session; `aal2`
    /// with TOTP on). The flow ends in `AccountLinkRequired`: finish with
    /// `linkPendingIdentity`.
    async fn start_identity_link(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider, where to return, and the app's PKCE challenge.")]
        input: StartSocialLoginInput,
    ) -> Result<SocialRedirect> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .social
            .start_link(req.bearer.as_deref(), input.into(), &req.meta)
            .await?
            .into())
    }

    /// Finishes a social login with the `code` from `redirectTo#code=…` and the PKCE
    /// verifier kept since `startSocialLogin`: a session (`aal1`, `amr` `["fed"]`), or
    /// `AccountLinkRequired`. A code is single use and lives 60 s; used, expired or
    /// with the wrong verifier it is `INVALID_TOKEN`. TOTP accounts get `MFA_REQUIRED`.
    async fn complete_social_login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "From the fragment of `redirectTo`: `#code=…`.")] code: String,
        #[graphql(desc = "The PKCE verifier whose challenge `startSocialLogin` got.")]
        code_verifier: String,
    ) -> Result<SocialLoginResultUnion> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(
            match services
                .social
                .complete(&code, &code_verifier, &req.meta)
                .await?
            {
                SocialLoginResult::Signed(payload) => SocialLoginResultUnion::AuthPayload(
                    super::cookies::deliver(ctx, payload, false),
                ),
                SocialLoginResult::LinkRequired(link) => {
                    SocialLoginResultUnion::AccountLinkRequired(AccountLinkRequired {
                        link_token: link.link_token,
                        provider: link.provider,
                        email: link.email,
                        expires_at: link.expires_at,
                    })
                }
            },
        )
    }

    /// Links the identity of an `AccountLinkRequired` to the signed-in account, which
    /// must be the one it named (fresh session; `aal2` with TOTP on). The owner is
    /// mailed. `CONFLICT` `IDENTITY_ALREADY_LINKED` if it is linked already, or the
    /// account has an identity of that provider.
    async fn link_pending_identity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "From `AccountLinkRequired`.")] link_token: String,
    ) -> Result<Identity> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .social
            .link_pending(req.bearer.as_deref(), &link_token, &req.meta)
            .await?
            .into())
    }

    /// Disconnects a provider from the signed-in account (fresh session; `aal2` with
    /// TOTP on); the owner is mailed. `CONFLICT` `LAST_LOGIN_METHOD` if the account
    /// would be left with no way to sign in.
    async fn unlink_identity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The identity's `id` from `myIdentities`.")] id: ID,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .social
            .unlink(req.bearer.as_deref(), &id, &req.meta)
            .await?)
    }
}

use async_graphql::{Context, Object, Result};

use super::{
    RequestCtx,
    types::{AuthPayload, LoginInput, RegisterInput},
};
use crate::service::Services;

#[derive(Default)]
pub(super) struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates an account and signs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .auth
            .register(input.into(), &req.meta)
            .await?
            .into())
    }

    /// Signs in with an email and password.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services.auth.login(input.into(), &req.meta).await?.into())
    }

    /// Exchanges a refresh token for a new access token and a new refresh token.
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .auth
            .refresh(&refresh_token, &req.meta)
            .await?
            .into())
    }

    /// Ends the session of a refresh token. Always true: an unknown or already revoked
    /// token is logged out too.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services.auth.logout(&refresh_token, &req.meta).await?)
    }
}

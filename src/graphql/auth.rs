use async_graphql::{Context, Object, Result};

use super::{
    RequestCtx,
    cookies::{self, deliver},
    types::{AuthPayload, LoginInput, RegisterInput},
};
use crate::{error::AppError, service::Services};

#[derive(Default)]
pub(super) struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates an account and signs it in.
    async fn register(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account.")] input: RegisterInput,
    ) -> Result<AuthPayload> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let payload = services.auth.register(input.into(), &req.meta).await?;
        Ok(deliver(ctx, payload, false))
    }

    /// Signs in with an email and password.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The address and password.")] input: LoginInput,
    ) -> Result<AuthPayload> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let payload = services.auth.login(input.into(), &req.meta).await?;
        Ok(deliver(ctx, payload, false))
    }

    /// Exchanges a refresh token for a new access token and a new refresh token.
    /// Without the argument, the refresh cookie of cookie mode is used (the request
    /// then needs `X-CSRF-Protection`, else HTTP 403 `CSRF_REJECTED`), and the successor
    /// is set as the cookie.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refresh token; omit it in cookie mode to use the cookie.")]
        refresh_token: Option<String>,
    ) -> Result<AuthPayload> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let Some(presented) = cookies::presented(req, refresh_token)? else {
            return Err(AppError::InvalidToken.into());
        };
        match services.auth.refresh(&presented.token, &req.meta).await {
            Ok(payload) => Ok(deliver(ctx, payload, presented.from_cookie)),
            Err(error) => {
                if presented.from_cookie && matches!(error, AppError::InvalidToken) {
                    // A cookie that no longer works is of no use to keep.
                    cookies::clear_refresh_cookie(ctx);
                }
                Err(error.into())
            }
        }
    }

    /// Ends the session of a refresh token (the argument, or else the refresh cookie,
    /// with the same CSRF checks as `refreshToken`) and clears the cookie. Always true:
    /// an unknown or already revoked token is logged out too.
    async fn logout(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refresh token; omit it in cookie mode to use the cookie.")]
        refresh_token: Option<String>,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let presented = cookies::presented(req, refresh_token)?;
        if cookies::in_cookie_mode(req, presented.as_ref()) {
            cookies::clear_refresh_cookie(ctx);
        }
        match presented {
            Some(p) => Ok(services.auth.logout(&p.token, &req.meta).await?),
            None => Ok(true),
        }
    }
}

use async_graphql::{Context, Object, Result};

use super::{RequestCtx, types::ResetPasswordInput};
use crate::service::Services;

#[derive(Default)]
pub(super) struct PasswordResetMutation;

#[Object]
impl PasswordResetMutation {
    /// Mails a reset link if the address belongs to an active account. True for every
    /// valid address, known or not.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's address.")] email: String,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services.password_reset.request(&email, &req.meta).await?)
    }

    /// Sets a new password with the token from a reset mail, and signs out every
    /// session of the account.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token and the new password.")] input: ResetPasswordInput,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .password_reset
            .reset(input.into(), &req.meta)
            .await?)
    }
}

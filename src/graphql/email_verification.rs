use async_graphql::{Context, Object, Result};

use super::RequestCtx;
use crate::service::Services;

#[derive(Default)]
pub(super) struct EmailVerificationMutation;

#[Object]
impl EmailVerificationMutation {
    /// Marks the account's address verified with the token from a verification mail.
    /// Single use; never signs in. `INVALID_TOKEN` if unknown, expired or used.
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token from the verification link.")] token: String,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .email_verification
            .verify(&token, &req.meta)
            .await?)
    }

    /// Mails a new verification link if the address belongs to an unverified account
    /// (at most one a minute, five an hour). True for every valid address.
    async fn resend_verification_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The address to send a new link to.")] email: String,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .email_verification
            .resend(&email, &req.meta)
            .await?)
    }
}

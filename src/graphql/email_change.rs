use async_graphql::{Context, Object, Result};

use super::RequestCtx;
use crate::service::Services;

#[derive(Default)]
pub(super) struct EmailChangeMutation;

#[Object]
impl EmailChangeMutation {
    /// Mails a confirm link to `newEmail` and a notice to the current address; the
    /// sign-in address changes only when the link is used. Needs a fresh session
    /// (`REAUTHENTICATION_REQUIRED` otherwise). `true` even when the address belongs
    /// to another account (then nothing is mailed to it).
    async fn request_email_change(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The address to change to.")] new_email: String,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .email_change
            .request(req.bearer.as_deref(), &new_email, &req.meta)
            .await?)
    }

    /// Makes the address of a confirm link the account's sign-in address. Signs out
    /// every other session (all of them when called without the account's access
    /// token) and mails both addresses. `INVALID_TOKEN` if unknown, expired or used.
    async fn confirm_email_change(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token from the link mailed to the new address.")] token: String,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .email_change
            .confirm(req.bearer.as_deref(), &token, &req.meta)
            .await?)
    }
}

use async_graphql::{Context, Object, Result};

use super::{RequestCtx, types::User};
use crate::service::Services;

#[derive(Default)]
pub(super) struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user (needs `Authorization: Bearer <accessToken>`).
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services.users.me(req.bearer.as_deref()).await?.into())
    }
}

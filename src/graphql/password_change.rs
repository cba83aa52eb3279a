//! `changePassword`: a signed-in user replaces their password.

use async_graphql::{Context, InputObject, Object, Result};
use secrecy::SecretString;

use super::{RequestCtx, types::AuthPayload};
use crate::service::{Services, password_change::ChangePasswordInput as ChangeCmd};

/// The current password, and the new one twice.
#[derive(InputObject)]
pub(super) struct ChangePasswordInput {
    /// The password in use now.
    pub current_password: String,
    /// Held to the same policy as at sign-up; must differ from the current one.
    pub new_password: String,
    /// Must equal `newPassword`.
    pub new_password_confirm: String,
    /// Sign out every other session of the account (the calling one is replaced).
    #[graphql(default = true)]
    pub sign_out_other_sessions: bool,
}

impl From<ChangePasswordInput> for ChangeCmd {
    fn from(i: ChangePasswordInput) -> Self {
        Self {
            current_password: SecretString::from(i.current_password),
            new_password: SecretString::from(i.new_password),
            new_password_confirm: SecretString::from(i.new_password_confirm),
            sign_out_other_sessions: i.sign_out_other_sessions,
        }
    }
}

#[derive(Default)]
pub(super) struct PasswordChangeMutation;

#[Object]
impl PasswordChangeMutation {
    /// Replaces the caller's password, proving the current one (a wrong one counts
    /// against the account's login back-off). The calling session is replaced by the
    /// one returned; the others are signed out unless `signOutOtherSessions` is false.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The current and the new password.")] input: ChangePasswordInput,
    ) -> Result<AuthPayload> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let payload = services
            .password_change
            .change(req.bearer.as_deref(), input.into(), &req.meta)
            .await?;
        Ok(super::cookies::deliver(ctx, payload, false))
    }
}

//! Sessions and devices: `mySessions`, `revokeSession`, `revokeOtherSessions`.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::RequestCtx;
use crate::service::{Services, sessions::SessionView};

/// A live session of the signed-in user.
#[derive(SimpleObject)]
pub(super) struct Session {
    /// The `sid` claim of its access tokens; never a token or a hash.
    pub id: ID,
    /// The session of the calling access token.
    pub current: bool,
    /// When the session started (a login).
    pub created_at: DateTime<Utc>,
    /// Last login or refresh.
    pub last_used_at: DateTime<Utc>,
    /// When it ends at the latest (`REFRESH_TOKEN_TTL` after login).
    pub expires_at: DateTime<Utc>,
    /// At login, then at each refresh.
    pub ip_address: Option<String>,
    /// As sent, at most 512 characters.
    pub user_agent: Option<String>,
    /// Parsed from the user agent, e.g. "Firefox"; null when unknown.
    pub browser: Option<String>,
    /// Parsed from the user agent, e.g. "Linux"; null when unknown.
    pub os: Option<String>,
    /// `aal1` or `aal2`.
    pub aal: String,
    /// How the session was proved (`amr` values).
    pub auth_methods: Vec<String>,
}

impl From<SessionView> for Session {
    fn from(s: SessionView) -> Self {
        Self {
            id: ID(s.id.to_string()),
            current: s.current,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            ip_address: s.ip_address,
            user_agent: s.user_agent,
            browser: s.browser,
            os: s.os,
            aal: s.assurance.aal.as_str().to_owned(),
            auth_methods: s
                .assurance
                .amr
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect(),
        }
    }
}

#[derive(Default)]
pub(super) struct SessionQuery;

#[Object]
impl SessionQuery {
    /// The signed-in user's live sessions: the calling one first, then by last use.
    async fn my_sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .sessions
            .mine(req.bearer.as_deref())
            .await?
            .into_iter()
            .map(Session::from)
            .collect())
    }
}

#[derive(Default)]
pub(super) struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Ends one of the signed-in user's sessions: its refresh and access tokens stop
    /// working at once. Always true: an unknown or foreign id is a no-op.
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A session `id` from `mySessions`.")] id: ID,
    ) -> Result<bool> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        Ok(services
            .sessions
            .revoke(req.bearer.as_deref(), &id, &req.meta)
            .await?)
    }

    /// Ends every session of the signed-in user but the calling one; how many ended.
    async fn revoke_other_sessions(&self, ctx: &Context<'_>) -> Result<i32> {
        let (services, req) = (ctx.data::<Services>()?, ctx.data::<RequestCtx>()?);
        let ended = services
            .sessions
            .revoke_others(req.bearer.as_deref(), &req.meta)
            .await?;
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }
}

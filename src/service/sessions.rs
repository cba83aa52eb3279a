//! Sessions and devices: a user lists their live sessions and ends any of them.

use chrono::{DateTime, Utc};

use super::{AuditEvent, Deps, RequestMeta};
use crate::{
    domain::assurance::Assurance,
    error::AppError,
    store::sessions::{self, RevokeReason},
};

/// One live session of the caller, as its owner sees it: never a token or a hash.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: uuid::Uuid,
    pub current: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub assurance: Assurance,
}

/// The caller's live sessions: the calling one first, then the most recently used
/// (`mySessions`, and the data export).
pub(super) async fn live_views(
    deps: &Deps,
    caller: &super::assurance::Caller,
) -> Result<Vec<SessionView>, AppError> {
    let now = deps.clock.now();
    let mut list: Vec<SessionView> = sessions::live_for_user(
        &deps.db,
        caller.user_id,
        now,
        deps.config.tokens.refresh_idle_ttl,
    )
    .await?
    .into_iter()
    .map(|s| SessionView {
        id: s.id,
        current: s.id == caller.session_id,
        assurance: s.assurance(),
        created_at: s.created_at,
        last_used_at: s.last_used_at,
        expires_at: s.expires_at,
        ip_address: s.ip,
        user_agent: s.user_agent,
        browser: s.browser,
        os: s.os,
    })
    .collect();
    // Stable: the rest keep their order, most recently used first.
    list.sort_by_key(|s| !s.current);
    Ok(list)
}

#[derive(Clone)]
pub struct SessionService {
    deps: Deps,
}

impl SessionService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// The caller's live sessions: the calling one first, then the most recently used.
    #[tracing::instrument(skip_all)]
    pub async fn mine(&self, bearer: Option<&str>) -> Result<Vec<SessionView>, AppError> {
        let caller = self.deps.caller(bearer).await?;
        live_views(&self.deps, &caller).await
    }

    /// Ends one of the caller's sessions. Always `Ok(true)`: an unknown id, another
    /// user's session or one already ended is left alone, so ids cannot be probed.
    #[tracing::instrument(skip_all)]
    pub async fn revoke(
        &self,
        bearer: Option<&str>,
        session_id: &str,
        meta: &RequestMeta,
    ) -> Result<bool, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        let caller = deps.caller(bearer).await?;
        let Ok(session_id) = uuid::Uuid::parse_str(session_id) else {
            return Ok(true);
        };
        let ended = self.end(&caller, Some(&[session_id]), None).await?;
        if !ended.is_empty() {
            deps.audit(AuditEvent::SessionRevoked, Some(caller.user_id), Some(meta))
                .await;
        }
        Ok(true)
    }

    /// Ends every session of the caller but the calling one; returns how many ended.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_others(
        &self,
        bearer: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<usize, AppError> {
        let deps = &self.deps;
        deps.check_ip_limits(meta, None).await?;
        let caller = deps.caller(bearer).await?;
        let ended = self.end(&caller, None, Some(caller.session_id)).await?;
        if !ended.is_empty() {
            deps.audit(
                AuditEvent::OtherSessionsRevoked,
                Some(caller.user_id),
                Some(meta),
            )
            .await;
        }
        Ok(ended.len())
    }

    /// Revokes in the database (refresh tokens die with it), then the access tokens
    /// on every instance.
    async fn end(
        &self,
        caller: &super::assurance::Caller,
        ids: Option<&[uuid::Uuid]>,
        keep: Option<uuid::Uuid>,
    ) -> Result<Vec<uuid::Uuid>, AppError> {
        let deps = &self.deps;
        let ended = sessions::revoke_of_user(
            &deps.db,
            caller.user_id,
            ids,
            keep,
            deps.clock.now(),
            deps.config.tokens.refresh_idle_ttl,
            RevokeReason::UserRevoked,
        )
        .await?;
        deps.revoke_access(&ended).await;
        Ok(ended)
    }
}

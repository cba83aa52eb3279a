//! `me`: the user behind an access token.

use super::Deps;
use crate::{
    domain::user::User,
    error::AppError,
    store::{sessions, users},
};

#[derive(Clone)]
pub struct UserService {
    deps: Deps,
}

impl UserService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// The active user an access token speaks for; `Unauthenticated` for a missing,
    /// malformed, expired or revoked token, or a deactivated account.
    #[tracing::instrument(skip_all)]
    pub async fn me(&self, bearer: Option<&str>) -> Result<User, AppError> {
        let token = bearer.ok_or(AppError::Unauthenticated)?;
        let now = self.deps.clock.now();
        let claims = self
            .deps
            .jwt
            .verify_access(token, now)
            .ok_or(AppError::Unauthenticated)?;
        if self.session_revoked(claims.sid).await? {
            return Err(AppError::Unauthenticated);
        }
        match users::find_by_id(&self.deps.db, claims.sub).await? {
            Some(user) if user.is_active => Ok(user),
            _ => Err(AppError::Unauthenticated),
        }
    }

    /// The revocation set answers without touching the database; if the token store
    /// cannot be reached, the session row answers instead (slower, still correct).
    async fn session_revoked(&self, session_id: uuid::Uuid) -> Result<bool, AppError> {
        let now = self.deps.clock.now();
        match self.deps.tokens.is_session_revoked(session_id, now).await {
            Ok(revoked) => Ok(revoked),
            Err(error) => {
                tracing::warn!(?error, "revocation set unreachable; asking the database");
                Ok(sessions::is_revoked(&self.deps.db, session_id).await?)
            }
        }
    }
}

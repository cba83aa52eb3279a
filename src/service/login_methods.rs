//! The ways an account signs in (a password, passkeys, provider identities), and the
//! one frame of removing one of them: `removePasskey` and `unlinkIdentity` both refuse
//! to leave an account with no way in (`CONFLICT LAST_LOGIN_METHOD`).

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use uuid::Uuid;

use super::{Deps, RequestMeta};
use crate::{
    domain::{email::Email, user::User},
    error::AppError,
    mail::OutgoingMail,
    store::{db::begin_write, identities, passkeys, users},
};

/// The ways an account can sign in.
pub(super) struct LoginMethods {
    pub password: bool,
    pub passkeys: u64,
    pub identities: u64,
}

impl LoginMethods {
    pub(super) fn count(&self) -> u64 {
        u64::from(self.password) + self.passkeys + self.identities
    }
}

/// A removal under way: the caller's account, the id named, and a transaction that
/// holds the user's row (two removals at once cannot both leave none).
pub(super) struct Removal {
    pub user: User,
    pub email: Email,
    pub id: Uuid,
    pub txn: DatabaseTransaction,
    /// Whether the account has one way to sign in left: the one being removed.
    pub last: bool,
    pub now: DateTime<Utc>,
}

pub(super) fn last_login_method() -> AppError {
    AppError::Conflict {
        reason: "LAST_LOGIN_METHOD",
    }
}

impl Deps {
    /// How the account can sign in, read in `db` (a transaction holding the user's
    /// row, for a removal that must leave one).
    pub(super) async fn login_methods(
        &self,
        db: &impl ConnectionTrait,
        user: &User,
    ) -> Result<LoginMethods, AppError> {
        let password = users::find_credential(db, &user.email)
            .await?
            .is_some_and(|c| c.user.id == user.id && !c.password_hash.is_empty());
        Ok(LoginMethods {
            password,
            passkeys: passkeys::count(db, user.id).await?,
            identities: identities::count_of_user(db, user.id).await?,
        })
    }

    /// Starts removing the way to sign in `id` names (fresh+); `unknown` is the answer
    /// for an id that is not one.
    pub(super) async fn begin_removal(
        &self,
        bearer: Option<&str>,
        meta: &RequestMeta,
        id: &str,
        unknown: fn() -> AppError,
    ) -> Result<Removal, AppError> {
        let (_, user, email) = self.fresh_plus_mutation(bearer, meta).await?;
        let id = Uuid::parse_str(id).map_err(|_| unknown())?;
        let txn = begin_write(&self.db).await.context("begin a removal")?;
        passkeys::lock_user(&txn, user.id).await?;
        let last = self.login_methods(&txn, &user).await?.count() <= 1;
        Ok(Removal {
            user,
            email,
            id,
            txn,
            last,
            now: self.clock.now(),
        })
    }

    /// Queues the owner's notice and commits the removal.
    pub(super) async fn finish_removal(
        &self,
        removal: Removal,
        kind: &'static str,
        notice: OutgoingMail,
    ) -> Result<(), AppError> {
        self.outbox
            .enqueue(&removal.txn, kind, notice, None, removal.now)
            .await?;
        removal.txn.commit().await.context("commit a removal")?;
        self.outbox.wake();
        Ok(())
    }
}

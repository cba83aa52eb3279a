//! The users table.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, SqlErr,
    sea_query::{Expr, ExprTrait, Func, Query},
};
use uuid::Uuid;

use super::entity::{user, user_totp};
use crate::domain::user::User;

pub struct NewUser {
    pub email: String,
    pub full_name: String,
    pub password_hash: String,
    pub now: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Inserts a user. The unique index on `email` decides races between registrations.
pub async fn insert(db: &impl ConnectionTrait, new: NewUser) -> Result<User, InsertError> {
    let model = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(new.email),
        full_name: Set(new.full_name),
        password_hash: Set(new.password_hash),
        is_active: Set(true),
        date_joined: Set(new.now),
        last_login: Set(None),
        email_verified_at: Set(None),
        deletion_scheduled_for: Set(None),
        webauthn_handle: Set(None),
    };
    match model.insert(db).await {
        Ok(m) => Ok(m.into()),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(InsertError::EmailTaken)
        }
        Err(e) => Err(anyhow::Error::new(e).context("insert user").into()),
    }
}

/// A user with the password hash to check a password against. Only the login path
/// reads it; the profile `User` never carries the hash.
pub struct Credential {
    pub user: User,
    pub password_hash: String,
    /// Whether the account has TOTP on (a login then asks for a second step): read in
    /// the same statement, so a login costs one round trip before the hash check.
    pub has_totp: bool,
}

pub async fn find_by_email(db: &impl ConnectionTrait, email: &str) -> anyhow::Result<Option<User>> {
    Ok(find_credential(db, email).await?.map(|c| c.user))
}

pub async fn find_credential(
    db: &impl ConnectionTrait,
    email: &str,
) -> anyhow::Result<Option<Credential>> {
    credential_where(db, user::Column::Email.eq(email)).await
}

/// The credential of the user `id`, in one statement.
pub async fn find_credential_by_id(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> anyhow::Result<Option<Credential>> {
    credential_where(db, user::Column::Id.eq(id)).await
}

/// The credential of the user `condition` picks, in one statement.
pub(super) async fn credential_where(
    db: &impl ConnectionTrait,
    condition: sea_orm::sea_query::SimpleExpr,
) -> anyhow::Result<Option<Credential>> {
    let totp = Query::select()
        .expr(Expr::val(1))
        .from(user_totp::Entity)
        .and_where(
            Expr::col((user_totp::Entity, user_totp::Column::UserId))
                .equals((user::Entity, user::Column::Id)),
        )
        .to_owned();
    let statement = user::Entity::find()
        .filter(condition)
        .column_as(Expr::exists(totp), "has_totp")
        .build(db.get_database_backend());
    let Some(row) = db
        .query_one_raw(statement)
        .await
        .context("find a user's credential")?
    else {
        return Ok(None);
    };
    let model = user::Model::from_query_result(&row, "").context("read user")?;
    let has_totp: bool = row.try_get("", "has_totp").context("read has_totp")?;
    Ok(Some(Credential {
        password_hash: model.password_hash.clone(),
        user: User::from(model),
        has_totp,
    }))
}

/// The users with any of these (normalised) addresses: one query per [`MAX_CHUNK`]
/// addresses.
///
/// [`MAX_CHUNK`]: super::db::MAX_CHUNK
pub async fn find_by_emails(
    db: &impl ConnectionTrait,
    emails: &[&str],
) -> anyhow::Result<Vec<User>> {
    let mut found = Vec::new();
    for chunk in super::db::padded_chunks(emails) {
        let users = user::Entity::find()
            .filter(user::Column::Email.is_in(chunk))
            .all(db)
            .await
            .context("find users by email")?;
        found.extend(users.into_iter().map(User::from));
    }
    Ok(found)
}

pub async fn find_by_id(db: &impl ConnectionTrait, id: Uuid) -> anyhow::Result<Option<User>> {
    Ok(user::Entity::find_by_id(id)
        .one(db)
        .await
        .context("find user by id")?
        .map(User::from))
}

/// Records a successful login of a user whose password was checked against
/// `verified_hash`, and stores a re-computed hash if there is one. Conditional: nothing
/// is written, and `false` is returned, if the stored hash is no longer the verified
/// one (a reset committed while the password was being checked) or the account was
/// deactivated meanwhile; a re-hash never writes over a newer password.
pub async fn record_login(
    db: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
    verified_hash: &str,
    new_hash: Option<String>,
) -> anyhow::Result<bool> {
    let mut update = user::Entity::update_many()
        .col_expr(user::Column::LastLogin, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::PasswordHash.eq(verified_hash))
        .filter(user::Column::IsActive.eq(true));
    if let Some(hash) = new_hash {
        update = update.col_expr(user::Column::PasswordHash, Expr::value(hash));
    }
    let result = update.exec(db).await.context("record login")?;
    Ok(result.rows_affected > 0)
}

/// Replaces the password of an active user whose current password was just checked
/// against `verified_hash` (`changePassword`). Conditional like `record_login`: `false`,
/// and nothing written, if the stored hash changed meanwhile (a reset or another change
/// committed while the password was being checked) or the account was deactivated. In
/// a transaction, the update also holds the user's row until it ends, so a login that
/// checked the old password cannot start a session after it (`sessions::create`).
pub async fn change_password_hash(
    db: &impl ConnectionTrait,
    id: Uuid,
    verified_hash: &str,
    new_hash: String,
) -> anyhow::Result<bool> {
    let result = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(new_hash))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::PasswordHash.eq(verified_hash))
        .filter(user::Column::IsActive.eq(true))
        .exec(db)
        .await
        .context("change password hash")?;
    Ok(result.rows_affected > 0)
}

pub async fn set_password_hash(
    db: &impl ConnectionTrait,
    id: Uuid,
    hash: String,
) -> anyhow::Result<()> {
    user::ActiveModel {
        id: Set(id),
        password_hash: Set(hash),
        ..Default::default()
    }
    .update(db)
    .await
    .context("set password hash")?;
    Ok(())
}

pub async fn set_active(db: &impl ConnectionTrait, id: Uuid, active: bool) -> anyhow::Result<()> {
    user::ActiveModel {
        id: Set(id),
        is_active: Set(active),
        ..Default::default()
    }
    .update(db)
    .await
    .context("set user active flag")?;
    Ok(())
}

/// Replaces the address of the active user `id` with `email`, verified at `now` (the
/// owner just proved control of it). The unique index decides a race with a
/// registration or another change to the same address: `EmailTaken`. `Ok(false)` if
/// the user is gone or inactive.
pub async fn change_email(
    db: &impl ConnectionTrait,
    id: Uuid,
    email: &str,
    now: DateTime<Utc>,
) -> Result<bool, InsertError> {
    let result = user::Entity::update_many()
        .col_expr(user::Column::Email, Expr::value(email))
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::IsActive.eq(true))
        .exec(db)
        .await;
    match result {
        Ok(result) => Ok(result.rows_affected > 0),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(InsertError::EmailTaken)
        }
        Err(e) => Err(anyhow::Error::new(e).context("change email").into()),
    }
}

/// Marks the address of `id` verified at `now`, unless it already is (the first proof
/// stands). `false` if the user is gone.
pub async fn mark_email_verified(
    db: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let result = user::Entity::update_many()
        .col_expr(
            user::Column::EmailVerifiedAt,
            Func::coalesce([Expr::col(user::Column::EmailVerifiedAt), Expr::value(now)]).into(),
        )
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await
        .context("mark email verified")?;
    Ok(result.rows_affected > 0)
}

/// Schedules the deletion of an active user whose deletion is not yet scheduled;
/// `false`, and nothing written, otherwise. In a transaction, it holds the user's row
/// until it ends, so a login that checked the password cannot start a session after it
/// (`sessions::create` refuses a user scheduled for deletion).
pub async fn schedule_deletion(
    db: &impl ConnectionTrait,
    id: Uuid,
    at: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let result = user::Entity::update_many()
        .col_expr(user::Column::DeletionScheduledFor, Expr::value(at))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::IsActive.eq(true))
        .filter(user::Column::DeletionScheduledFor.is_null())
        .exec(db)
        .await
        .context("schedule account deletion")?;
    Ok(result.rows_affected > 0)
}

/// Clears a scheduled deletion; `false` if none was scheduled (or the user is gone).
pub async fn cancel_deletion(db: &impl ConnectionTrait, id: Uuid) -> anyhow::Result<bool> {
    let result = user::Entity::update_many()
        .col_expr(
            user::Column::DeletionScheduledFor,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::DeletionScheduledFor.is_not_null())
        .exec(db)
        .await
        .context("cancel account deletion")?;
    Ok(result.rows_affected > 0)
}

/// Up to `limit` users whose deletion is due at `now`.
pub async fn due_for_deletion(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> anyhow::Result<Vec<Uuid>> {
    user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::DeletionScheduledFor.lte(now))
        .order_by_asc(user::Column::DeletionScheduledFor)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
        .context("find accounts due for deletion")
}

/// What is left of a deleted user: where to send the last mail.
pub struct Deleted {
    pub email: String,
}

/// Deletes the user if their deletion is due at `now` (their sessions, refresh tokens
/// and account tokens go with them: foreign keys cascade); `None` if it is not (it was
/// cancelled, or another instance deleted the user first). One statement: of
/// concurrent purges exactly one deletes.
pub async fn delete_if_due(
    db: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Deleted>> {
    let statement = Query::delete()
        .from_table(user::Entity)
        .and_where(user::Column::Id.eq(id))
        .and_where(user::Column::DeletionScheduledFor.lte(now))
        .returning_col(user::Column::Email)
        .to_owned();
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(backend.build(&statement))
        .await
        .context("delete user")?;
    row.map(|row| {
        row.try_get_by_index::<String>(0)
            .map(|email| Deleted { email })
    })
    .transpose()
    .context("deleted user's email")
}

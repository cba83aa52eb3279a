//! The account_tokens table: mailed single-use links (email verification, change of
//! email, and later deletion cancel). Only the SHA-256 of a token is stored
//! (`security::opaque_token::digest`). A user has at most one live token per purpose:
//! issuing deletes the older ones. Using a token is one statement that deletes its
//! row (if not expired) and returns it, so of concurrent uses exactly one wins.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::Query,
};
use uuid::Uuid;

use super::entity::account_token;

/// What a token is for; stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    /// Confirms a new address; the row holds it (`new_email`).
    ChangeEmail,
    /// Cancels a requested account deletion.
    CancelDeletion,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ChangeEmail => "change_email",
            Purpose::CancelDeletion => "cancel_deletion",
        }
    }
}

/// Stores a token for `user_id`, replacing the user's other tokens of `purpose`.
pub async fn issue(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: Purpose,
    token_hash: String,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    insert(db, user_id, purpose, token_hash, now, expires_at, None).await
}

/// Stores the token of a pending change to `new_email`, replacing any older one.
pub async fn issue_email_change(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    new_email: &str,
    token_hash: String,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let purpose = Purpose::ChangeEmail;
    let address = Some(new_email.to_owned());
    insert(db, user_id, purpose, token_hash, now, expires_at, address).await
}

async fn insert(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: Purpose,
    token_hash: String,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    new_email: Option<String>,
) -> anyhow::Result<()> {
    cancel(db, user_id, purpose).await?;
    account_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        purpose: Set(purpose.as_str().to_owned()),
        token_hash: Set(token_hash),
        created_at: Set(now),
        expires_at: Set(expires_at),
        new_email: Set(new_email),
    }
    .insert(db)
    .await
    .context("insert account token")?;
    Ok(())
}

/// Uses a token: deletes it and returns its user, if it exists for `purpose` and has
/// not expired at `now`. One statement (`DELETE … RETURNING`): single use, race-free.
pub async fn take(
    db: &impl ConnectionTrait,
    purpose: Purpose,
    token_hash: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Uuid>> {
    Ok(take_row(db, purpose, token_hash, now)
        .await?
        .map(|(user_id, _)| user_id))
}

/// The one statement that uses a token: deletes it (if live) and returns its user and
/// the address it holds, if any.
async fn take_row(
    db: &impl ConnectionTrait,
    purpose: Purpose,
    token_hash: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<(Uuid, Option<String>)>> {
    let statement = Query::delete()
        .from_table(account_token::Entity)
        .and_where(account_token::Column::TokenHash.eq(token_hash))
        .and_where(account_token::Column::Purpose.eq(purpose.as_str()))
        .and_where(account_token::Column::ExpiresAt.gt(now))
        .returning(Query::returning().columns([
            account_token::Column::UserId,
            account_token::Column::NewEmail,
        ]))
        .to_owned();
    let backend = db.get_database_backend();
    let Some(row) = db
        .query_one_raw(backend.build(&statement))
        .await
        .with_context(|| format!("take {} token", purpose.as_str()))?
    else {
        return Ok(None);
    };
    let user_id = row.try_get_by_index::<Uuid>(0).context("token user")?;
    let address = row
        .try_get_by_index::<Option<String>>(1)
        .context("token address")?;
    Ok(Some((user_id, address)))
}

/// Uses the token of a pending change of email: deletes it and returns its user and
/// the address it confirms, as `take` does.
pub async fn take_email_change(
    db: &impl ConnectionTrait,
    token_hash: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<(Uuid, String)>> {
    let taken = take_row(db, Purpose::ChangeEmail, token_hash, now).await?;
    Ok(taken.and_then(|(user_id, address)| address.map(|a| (user_id, a))))
}

/// Deletes the user's open tokens of `purpose`; the links mailed with them stop working.
pub async fn cancel(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: Purpose,
) -> anyhow::Result<()> {
    account_token::Entity::delete_many()
        .filter(account_token::Column::UserId.eq(user_id))
        .filter(account_token::Column::Purpose.eq(purpose.as_str()))
        .exec(db)
        .await
        .with_context(|| format!("cancel {} tokens", purpose.as_str()))?;
    Ok(())
}

/// Deletes tokens that expired before `before` (the retention job).
pub async fn purge_expired(
    db: &sea_orm::DatabaseConnection,
    before: DateTime<Utc>,
    batch: u64,
) -> anyhow::Result<u64> {
    let expired = sea_orm::Condition::all().add(account_token::Column::ExpiresAt.lt(before));
    super::db::delete_in_batches::<account_token::Entity>(
        db,
        account_token::Column::Id,
        expired,
        batch,
    )
    .await
    .context("purge expired account tokens")
}

/// Deletes every token of `user_id`, whatever its purpose (an account deletion cancels
/// open links).
pub async fn delete_for_user(db: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<u64> {
    let result = account_token::Entity::delete_many()
        .filter(account_token::Column::UserId.eq(user_id))
        .exec(db)
        .await
        .context("delete a user's account tokens")?;
    Ok(result.rows_affected)
}

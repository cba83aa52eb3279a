//! The passkeys table and the users' WebAuthn handles. Races between instances end in
//! one statement each: the unique credential id refuses a second registration of a key,
//! the handle is set only where none is, and a use updates a passkey only if it is
//! still as it was read.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, SqlErr, sea_query::Expr,
};
use uuid::Uuid;

use super::{
    entity::{passkey, user},
    users::Credential,
};

/// A passkey as stored.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub credential_id: String,
    pub name: String,
    /// The serialised webauthn-rs `Passkey`.
    pub credential: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub backed_up: bool,
}

impl From<passkey::Model> for StoredPasskey {
    fn from(m: passkey::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            credential_id: m.credential_id,
            name: m.name,
            credential: m.credential,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            backed_up: m.backed_up,
        }
    }
}

pub struct NewPasskey {
    pub user_id: Uuid,
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub backed_up: bool,
    pub now: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("credential already registered")]
    CredentialTaken,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Makes one user's passkey changes take turns until the transaction ends (the limit
/// of 10, the last way to sign in): on PostgreSQL by locking the user's row; on SQLite
/// the write lock `begin_write` took already does.
pub async fn lock_user(txn: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        user::Entity::find_by_id(user_id)
            .lock_exclusive()
            .one(txn)
            .await
            .context("lock the user's passkeys")?;
    }
    Ok(())
}

/// The user's WebAuthn handle, made (randomly) at the first call. Of two concurrent
/// first calls, one handle wins and both return it.
pub async fn ensure_handle(db: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<Uuid> {
    user::Entity::update_many()
        .col_expr(user::Column::WebauthnHandle, Expr::value(Uuid::new_v4()))
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::WebauthnHandle.is_null())
        .exec(db)
        .await
        .context("set WebAuthn handle")?;
    user::Entity::find_by_id(user_id)
        .one(db)
        .await
        .context("read WebAuthn handle")?
        .and_then(|m| m.webauthn_handle)
        .context("user without WebAuthn handle")
}

/// The user whose passkeys carry `handle`, with their password hash.
pub async fn find_user_by_handle(
    db: &impl ConnectionTrait,
    handle: Uuid,
) -> anyhow::Result<Option<Credential>> {
    super::users::credential_where(db, user::Column::WebauthnHandle.eq(handle))
        .await
        .context("find user by WebAuthn handle")
}

/// The user's passkeys, oldest first.
pub async fn list(db: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<Vec<StoredPasskey>> {
    Ok(passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .order_by_asc(passkey::Column::CreatedAt)
        .order_by_asc(passkey::Column::Id)
        .all(db)
        .await
        .context("list passkeys")?
        .into_iter()
        .map(StoredPasskey::from)
        .collect())
}

pub async fn count(db: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<u64> {
    passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .count(db)
        .await
        .context("count passkeys")
}

pub async fn find_by_credential_id(
    db: &impl ConnectionTrait,
    credential_id: &str,
) -> anyhow::Result<Option<StoredPasskey>> {
    Ok(passkey::Entity::find()
        .filter(passkey::Column::CredentialId.eq(credential_id))
        .one(db)
        .await
        .context("find passkey")?
        .map(StoredPasskey::from))
}

/// Stores a new passkey; `CredentialTaken` if its credential id is anyone's already.
pub async fn insert(
    db: &impl ConnectionTrait,
    new: NewPasskey,
) -> Result<StoredPasskey, InsertError> {
    let row = passkey::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(new.user_id),
        credential_id: Set(new.credential_id),
        name: Set(new.name),
        credential: Set(new.credential),
        created_at: Set(new.now),
        last_used_at: Set(None),
        backed_up: Set(new.backed_up),
    };
    match passkey::Entity::insert(row).exec_with_returning(db).await {
        Ok(m) => Ok(m.into()),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(InsertError::CredentialTaken)
        }
        Err(e) => Err(anyhow::Error::new(e).context("insert passkey").into()),
    }
}

/// Records a use of a passkey: its credential (counter, backup flags) as updated, its
/// backup state, and when. Only if the stored credential is still `read` (what the
/// check ran against): `false` when another use got there first.
pub async fn record_use(
    db: &impl ConnectionTrait,
    id: Uuid,
    read: &str,
    credential: String,
    backed_up: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let result = passkey::Entity::update_many()
        .col_expr(passkey::Column::Credential, Expr::value(credential))
        .col_expr(passkey::Column::BackedUp, Expr::value(backed_up))
        .col_expr(passkey::Column::LastUsedAt, Expr::value(Some(now)))
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::Credential.eq(read))
        .exec(db)
        .await
        .context("record passkey use")?;
    Ok(result.rows_affected > 0)
}

/// Renames one of the user's passkeys; `None` if they have none with that id.
pub async fn rename(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    name: &str,
) -> anyhow::Result<Option<StoredPasskey>> {
    let result = passkey::Entity::update_many()
        .col_expr(passkey::Column::Name, Expr::value(name))
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(db)
        .await
        .context("rename passkey")?;
    if result.rows_affected == 0 {
        return Ok(None);
    }
    Ok(passkey::Entity::find_by_id(id)
        .one(db)
        .await
        .context("read passkey")?
        .map(StoredPasskey::from))
}

/// Deletes one of the user's passkeys; `false` if they have none with that id.
pub async fn delete(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> anyhow::Result<bool> {
    let result = passkey::Entity::delete_many()
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(db)
        .await
        .context("delete passkey")?;
    Ok(result.rows_affected > 0)
}

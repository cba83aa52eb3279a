//! The provider identities linked to accounts (social login). The unique index on
//! (provider, subject) decides which account an identity belongs to when two requests
//! race; the one on (user, provider) keeps an account to one identity per provider.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, SqlErr, sea_query::Expr,
};
use uuid::Uuid;

use super::entity::user_identity;

/// An identity as stored.
#[derive(Debug, Clone)]
pub struct StoredIdentity {
    pub id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<user_identity::Model> for StoredIdentity {
    fn from(m: user_identity::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            provider: m.provider,
            subject: m.subject,
            email: m.email,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
        }
    }
}

pub struct NewIdentity<'a> {
    pub user_id: Uuid,
    pub provider: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The identity belongs to an account already, or the account has one of this
    /// provider.
    #[error("identity already linked")]
    AlreadyLinked,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The identity (provider, subject), if linked.
pub async fn find(
    db: &impl ConnectionTrait,
    provider: &str,
    subject: &str,
) -> anyhow::Result<Option<StoredIdentity>> {
    Ok(user_identity::Entity::find()
        .filter(user_identity::Column::Provider.eq(provider))
        .filter(user_identity::Column::Subject.eq(subject))
        .one(db)
        .await
        .context("find an identity")?
        .map(Into::into))
}

/// Links an identity; the unique indexes refuse a second owner or a second identity
/// of the provider on the account.
pub async fn insert(
    db: &impl ConnectionTrait,
    new: NewIdentity<'_>,
) -> Result<StoredIdentity, LinkError> {
    let model = user_identity::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(new.user_id),
        provider: Set(new.provider.to_owned()),
        subject: Set(new.subject.to_owned()),
        email: Set(new.email.map(str::to_owned)),
        created_at: Set(new.now),
        last_used_at: Set(Some(new.now)),
    };
    match user_identity::Entity::insert(model)
        .exec_with_returning(db)
        .await
    {
        Ok(m) => Ok(m.into()),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(LinkError::AlreadyLinked)
        }
        Err(e) => Err(anyhow::Error::new(e).context("link an identity").into()),
    }
}

/// Records a sign-in with the identity, and the address the provider gave this time.
pub async fn record_use(
    db: &impl ConnectionTrait,
    id: Uuid,
    email: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    user_identity::Entity::update_many()
        .col_expr(user_identity::Column::LastUsedAt, Expr::value(now))
        .col_expr(
            user_identity::Column::Email,
            Expr::value(email.map(str::to_owned)),
        )
        .filter(user_identity::Column::Id.eq(id))
        .exec(db)
        .await
        .context("record the use of an identity")?;
    Ok(())
}

/// The identities of an account, oldest first.
pub async fn of_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> anyhow::Result<Vec<StoredIdentity>> {
    Ok(user_identity::Entity::find()
        .filter(user_identity::Column::UserId.eq(user_id))
        .order_by_asc(user_identity::Column::CreatedAt)
        .all(db)
        .await
        .context("list identities")?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// How many identities the account has.
pub async fn count_of_user(db: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<u64> {
    user_identity::Entity::find()
        .filter(user_identity::Column::UserId.eq(user_id))
        .count(db)
        .await
        .context("count identities")
}

/// Unlinks one of the account's identities; `None` if it has no such identity.
pub async fn delete_of_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> anyhow::Result<Option<StoredIdentity>> {
    let Some(found) = user_identity::Entity::find_by_id(id)
        .filter(user_identity::Column::UserId.eq(user_id))
        .one(db)
        .await
        .context("find an identity")?
    else {
        return Ok(None);
    };
    user_identity::Entity::delete_by_id(id)
        .exec(db)
        .await
        .context("unlink an identity")?;
    Ok(Some(found.into()))
}

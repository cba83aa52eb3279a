//! The user_totp and recovery_codes tables. Every state change a second instance could
//! race is one conditional statement: enabling inserts only where no row exists,
//! accepting a code moves `last_step` only forward, using a recovery code marks it used
//! only if it was not.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, SqlErr,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::entity::{recovery_code, user_totp};

/// A user's TOTP as stored.
#[derive(Debug, Clone)]
pub struct StoredTotp {
    pub sealed_secret: String,
    pub last_step: u64,
    pub failures: u32,
    pub locked_until: Option<DateTime<Utc>>,
}

pub async fn find_totp(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> anyhow::Result<Option<StoredTotp>> {
    let row = user_totp::Entity::find_by_id(user_id)
        .one(db)
        .await
        .context("read TOTP")?;
    Ok(row.map(|r| StoredTotp {
        sealed_secret: r.secret,
        last_step: u64::try_from(r.last_step).unwrap_or(0),
        failures: u32::try_from(r.failures).unwrap_or(0),
        locked_until: r.locked_until,
    }))
}

pub async fn has_totp(db: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<bool> {
    let count = user_totp::Entity::find_by_id(user_id)
        .count(db)
        .await
        .context("read TOTP")?;
    Ok(count > 0)
}

/// Turns TOTP on with the step of the enrolment's code as the last one accepted.
/// `false` if it already is on (another confirmation won).
pub async fn enable_totp(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    sealed_secret: String,
    step: u64,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let row = user_totp::ActiveModel {
        user_id: Set(user_id),
        secret: Set(sealed_secret),
        last_step: Set(i64::try_from(step).context("TOTP step")?),
        failures: Set(0),
        locked_until: Set(None),
        enabled_at: Set(now),
    };
    match user_totp::Entity::insert(row).exec(db).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("enable TOTP")),
    }
}

/// Removes TOTP and every recovery code. `false` if TOTP was not on.
pub async fn disable_totp(db: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<bool> {
    delete_recovery_codes(db, user_id).await?;
    let result = user_totp::Entity::delete_by_id(user_id)
        .exec(db)
        .await
        .context("disable TOTP")?;
    Ok(result.rows_affected > 0)
}

/// Accepts a code for `step` if it is later than the last accepted one, and ends the
/// run of wrong codes. Of two instances accepting the same code, one wins.
pub async fn accept_step(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    step: u64,
) -> anyhow::Result<bool> {
    let step = i64::try_from(step).context("TOTP step")?;
    let result = user_totp::Entity::update_many()
        .col_expr(user_totp::Column::LastStep, Expr::value(step))
        .col_expr(user_totp::Column::Failures, Expr::value(0))
        .col_expr(
            user_totp::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(user_totp::Column::UserId.eq(user_id))
        .filter(user_totp::Column::LastStep.lt(step))
        .exec(db)
        .await
        .context("accept TOTP step")?;
    Ok(result.rows_affected > 0)
}

/// Replaces the sealed secret `old` with `new` (the same secret under the current key),
/// unless it changed meanwhile.
pub async fn reseal_totp(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    old: &str,
    new: String,
) -> anyhow::Result<()> {
    user_totp::Entity::update_many()
        .col_expr(user_totp::Column::Secret, Expr::value(new))
        .filter(user_totp::Column::UserId.eq(user_id))
        .filter(user_totp::Column::Secret.eq(old))
        .exec(db)
        .await
        .context("seal the TOTP secret again")?;
    Ok(())
}

/// Counts a wrong code; the `limit`-th in a row locks the second step until `lock_until`.
/// Returns the failures in a row now, and whether this one locked it.
pub async fn record_failure(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    limit: u32,
    lock_until: DateTime<Utc>,
) -> anyhow::Result<(u32, bool)> {
    // One statement counts and reads back: concurrent wrong codes each see their own
    // count, so exactly one of them is the `limit`-th.
    let updated = user_totp::Entity::update_many()
        .col_expr(
            user_totp::Column::Failures,
            Expr::col(user_totp::Column::Failures).add(1),
        )
        .filter(user_totp::Column::UserId.eq(user_id))
        .exec_with_returning(db)
        .await
        .context("count a wrong code")?;
    let failures = updated
        .first()
        .map_or(0, |t| u32::try_from(t.failures).unwrap_or(0));
    let locks = failures >= limit && failures % limit == 0;
    if locks {
        user_totp::Entity::update_many()
            .col_expr(user_totp::Column::LockedUntil, Expr::value(lock_until))
            .filter(user_totp::Column::UserId.eq(user_id))
            .exec(db)
            .await
            .context("lock the second step")?;
    }
    Ok((failures, locks))
}

/// Replaces the user's recovery codes with these digests.
pub async fn replace_recovery_codes(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    digests: Vec<String>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    delete_recovery_codes(db, user_id).await?;
    let rows = digests
        .into_iter()
        .map(|code_hash| recovery_code::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            code_hash: Set(code_hash),
            created_at: Set(now),
            used_at: Set(None),
        });
    recovery_code::Entity::insert_many(rows)
        .exec(db)
        .await
        .context("store recovery codes")?;
    Ok(())
}

async fn delete_recovery_codes(db: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<()> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(db)
        .await
        .context("delete recovery codes")?;
    Ok(())
}

/// Uses a recovery code: marks it used if it is the user's and unused. Exactly one of
/// concurrent uses wins.
pub async fn use_recovery_code(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    digest: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let result = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(now))
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::CodeHash.eq(digest))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(db)
        .await
        .context("use a recovery code")?;
    Ok(result.rows_affected > 0)
}

pub async fn recovery_codes_left(db: &impl ConnectionTrait, user_id: Uuid) -> anyhow::Result<u64> {
    recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(db)
        .await
        .context("count recovery codes")
}

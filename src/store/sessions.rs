//! Sessions (refresh-token families) and their refresh tokens.
//!
//! Revocation is a mark on the session row, so revoking a family is one update that
//! also covers successors stored concurrently. Rotations of one token take turns on
//! the token's row lock (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite every write
//! transaction takes the database lock at `BEGIN IMMEDIATE`).

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement,
    sea_query::{Expr, LockType, Query},
};
use uuid::Uuid;

use super::{
    db::begin_write,
    entity::{refresh_token, session, user, user_totp},
};
use crate::domain::{
    assurance::{Aal, Assurance},
    device::Device,
    user::User,
};

pub struct NewSession {
    pub user_id: Uuid,
    /// The password hash the user proved to know: the session starts only if it is
    /// still the user's (no reset committed meanwhile) and the user is still active.
    pub password_hash: String,
    pub token_hash: String,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The user agent as sent (bounded), with its browser and OS.
    pub device: Device,
    pub ip: Option<String>,
    /// Live sessions the user may have, this one included: the oldest beyond end.
    pub max_per_user: u32,
    /// A session unused this long is no longer live (and does not count).
    pub idle: Duration,
    /// How the session was proved, and when.
    pub assurance: Assurance,
}

/// A session just started, and the sessions it ended (the user's oldest, beyond
/// `NewSession::max_per_user`), whose access tokens must be revoked too.
#[derive(Debug)]
pub struct Created {
    pub session_id: Uuid,
    pub ended: Vec<Uuid>,
}

/// Why a session ended; stored for the audit of a session.
#[derive(Debug, Clone, Copy)]
pub enum RevokeReason {
    Logout,
    ReuseDetected,
    PasswordReset,
    PasswordChange,
    Deactivated,
    SessionLimit,
    /// Ended by its user from another session (`revokeSession`, `revokeOtherSessions`).
    UserRevoked,
    /// The account's address changed (`confirmEmailChange`).
    EmailChange,
    /// A second factor was turned on or off.
    SecondFactorChange,
    /// The owner asked for the account to be deleted.
    DeletionRequested,
    /// A trusted provider's verified address claimed the unverified account.
    AccountClaimed,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::ReuseDetected => "reuse_detected",
            Self::PasswordReset => "password_reset",
            Self::PasswordChange => "password_change",
            Self::Deactivated => "deactivated",
            Self::SessionLimit => "session_limit",
            Self::UserRevoked => "user_revoked",
            Self::EmailChange => "email_change",
            Self::SecondFactorChange => "second_factor_change",
            Self::DeletionRequested => "deletion_requested",
            Self::AccountClaimed => "account_claimed",
        }
    }
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Rotation {
    /// The token was live; it is now rotated and its successor stored.
    Rotated {
        session_id: Uuid,
        assurance: Assurance,
        user: User,
    },
    /// Presented again within the grace window after its rotation: answer with the
    /// same successor.
    Replayed {
        session_id: Uuid,
        assurance: Assurance,
        user: User,
    },
    /// Presented after the grace window: the whole family has just been revoked.
    ReuseDetected { session_id: Uuid, user: User },
    /// Unknown, expired, revoked, or its user is inactive.
    Invalid,
}

/// Starts a session with its first refresh token, and ends the user's oldest live
/// sessions beyond the bound. Returns the session id and those it ended, or `None`
/// when the credential the session is for is no longer the user's: the password was
/// changed, the account deactivated or its deletion requested after the password was
/// checked.
///
/// The user's row is locked while the session is inserted (`FOR NO KEY UPDATE` on
/// PostgreSQL; SQLite's write lock is taken at `BEGIN IMMEDIATE`). A reset or
/// deactivation writes the user row before it revokes every session: either it
/// committed first, and this finds the row changed, or it waits for this transaction
/// and then revokes the session this inserted.
///
/// An `aal1` session is refused (`None`) when the account has TOTP on: a login that
/// read "no TOTP" before a concurrent enrolment committed must not leave a one-factor
/// session on an account that now has two (the enrolment revokes the sessions it saw,
/// holding the user's row; this one comes after and finds the TOTP row).
pub async fn create(db: &DatabaseConnection, new: NewSession) -> anyhow::Result<Option<Created>> {
    let txn = begin_write(db).await?;
    let mut current = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Id.eq(new.user_id))
        .filter(user::Column::PasswordHash.eq(new.password_hash.as_str()))
        .filter(user::Column::IsActive.eq(true))
        .filter(user::Column::DeletionScheduledFor.is_null());
    if new.assurance.aal == Aal::Aal1 {
        current = current.filter(
            user::Column::Id.not_in_subquery(
                Query::select()
                    .column(user_totp::Column::UserId)
                    .from(user_totp::Entity)
                    .and_where(user_totp::Column::UserId.eq(new.user_id))
                    .to_owned(),
            ),
        );
    }
    if db.get_database_backend() == DbBackend::Postgres {
        current = current.lock(LockType::NoKeyUpdate);
    }
    let current: Option<Uuid> = current
        .into_tuple()
        .one(&txn)
        .await
        .context("lock the session's user")?;
    if current.is_none() {
        txn.rollback().await.context("rollback create session")?;
        return Ok(None);
    }
    let created = create_in(&txn, new).await?;
    txn.commit().await.context("commit create session")?;
    Ok(Some(created))
}

/// Starts a session with its first refresh token in a transaction that already holds
/// the user's row and has checked the credential (`create`, `changePassword`), and ends
/// the user's oldest live sessions beyond the bound. `new.password_hash` is not read.
pub async fn create_in(txn: &DatabaseTransaction, new: NewSession) -> anyhow::Result<Created> {
    let session_id = Uuid::now_v7();
    session::ActiveModel {
        id: Set(session_id),
        user_id: Set(new.user_id),
        created_at: Set(new.now),
        expires_at: Set(new.expires_at),
        last_used_at: Set(new.now),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        user_agent: Set(new.device.user_agent),
        ip: Set(new.ip),
        browser: Set(new.device.browser),
        os: Set(new.device.os),
        aal: Set(new.assurance.aal.as_str().to_owned()),
        amr: Set(new.assurance.amr_stored()),
        auth_time: Set(Some(new.assurance.auth_time)),
    }
    .insert(txn)
    .await
    .context("insert session")?;
    insert_token(txn, session_id, new.token_hash, new.now).await?;
    let ended = end_beyond_bound(txn, new.user_id, new.now, new.idle, new.max_per_user).await?;
    Ok(Created { session_id, ended })
}

/// Ends the sessions a password change replaces: the calling session, and every other
/// live one of the user when `others` is set. Returns their ids (the caller's first),
/// or `None`, and nothing revoked, when the calling session is not a live session of
/// the user (it ended while the password was being checked).
pub async fn end_for_password_change(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    calling: Uuid,
    others: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Vec<Uuid>>> {
    let mut ended = returning_ids(
        db,
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
         WHERE id = $3 AND user_id = $4 AND revoked_at IS NULL AND expires_at > $1 \
         RETURNING id",
        [
            now.into(),
            RevokeReason::PasswordChange.as_str().into(),
            calling.into(),
            user_id.into(),
        ],
    )
    .await
    .context("end the calling session")?;
    if ended.is_empty() {
        return Ok(None);
    }
    if others {
        ended.extend(revoke_all_for_user(db, user_id, now, RevokeReason::PasswordChange).await?);
    }
    Ok(Some(ended))
}

/// Revokes the user's live sessions beyond the newest `keep`; returns their ids. Runs
/// under the lock on the user's row (`create`), so concurrent logins count in turn.
async fn end_beyond_bound(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    now: DateTime<Utc>,
    idle: Duration,
    keep: u32,
) -> anyhow::Result<Vec<Uuid>> {
    // SQLite wants a LIMIT before an OFFSET (-1: none).
    let rest = match txn.get_database_backend() {
        DbBackend::Sqlite => "LIMIT -1 OFFSET $5",
        _ => "OFFSET $5",
    };
    let sql = format!(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id IN ( \
           SELECT id FROM sessions WHERE user_id = $3 AND revoked_at IS NULL \
             AND expires_at > $1 AND last_used_at > $4 \
           ORDER BY created_at DESC, id DESC {rest}) \
         RETURNING id"
    );
    returning_ids(
        txn,
        &sql,
        [
            now.into(),
            RevokeReason::SessionLimit.as_str().into(),
            user_id.into(),
            (now - delta(idle)).into(),
            i64::from(keep).into(),
        ],
    )
    .await
    .context("end sessions beyond the bound")
}

/// Runs a statement written with `$n` placeholders (`?n` on SQLite) and returns the
/// UUIDs in its first column.
async fn returning_ids<const N: usize>(
    db: &impl ConnectionTrait,
    sql: &str,
    values: [sea_orm::Value; N],
) -> anyhow::Result<Vec<Uuid>> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    rows.iter()
        .map(|row| row.try_get_by_index::<Uuid>(0).map_err(Into::into))
        .collect()
}

/// Records a credential proved again on a live session of `user_id` (`reauthenticate`):
/// its new assurance. `false` if the session is not the user's, or no longer live.
pub async fn reauthenticated(
    db: &DatabaseConnection,
    session_id: Uuid,
    user_id: Uuid,
    assurance: &Assurance,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let updated = session::Entity::update_many()
        .col_expr(session::Column::Aal, Expr::value(assurance.aal.as_str()))
        .col_expr(session::Column::Amr, Expr::value(assurance.amr_stored()))
        .col_expr(session::Column::AuthTime, Expr::value(assurance.auth_time))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .exec(db)
        .await
        .context("record reauthentication")?;
    Ok(updated.rows_affected == 1)
}

/// How long a session lives without use, and how long a rotated token still gets its
/// successor.
pub struct Lifetimes {
    pub idle: Duration,
    pub grace: Duration,
}

/// Exchanges a refresh token for its successor, atomically, with reuse detection.
///
/// On PostgreSQL the usual case, a live token presented for the first time, is one
/// statement in one round trip (`rotate_live_pg`). A token that is unknown, or whose
/// session or user is no longer live, is answered by a plain read, without a write
/// transaction: on SQLite a junk token never waits for (or takes) the write lock.
/// Everything else (a replay within the grace window, reuse, and every rotation on
/// SQLite) takes the general path: BEGIN; one statement that finds the token, its
/// session and user and locks the token row; one statement for the writes; COMMIT.
///
/// A rotation or replay records `ip` as the session's last address.
pub async fn rotate(
    db: &DatabaseConnection,
    token_hash: &str,
    successor_hash: String,
    now: DateTime<Utc>,
    ip: &str,
    lifetimes: &Lifetimes,
) -> anyhow::Result<Rotation> {
    if db.get_database_backend() == DbBackend::Postgres
        && let Some(rotated) =
            rotate_live_pg(db, token_hash, &successor_hash, now, ip, lifetimes.idle).await?
    {
        return Ok(rotated);
    }
    // Dead is final (a revoked, expired or idle session, an inactive user never come
    // back), so a read that finds no live token settles it without the lock.
    let (found, _) = find_live(db, token_hash, now, lifetimes, None).await?;
    if found.is_none() {
        return Ok(Rotation::Invalid);
    }
    let txn = begin_write(db).await?;
    // One statement finds the token, its session and user, and locks the token row:
    // concurrent rotations of one token take turns, and under the lock PostgreSQL
    // returns the row's latest committed version, so a rotation that committed
    // meanwhile is seen. The session row needs no lock: revocation is a mark on it, so
    // a successor stored while its family is revoked is refused like the rest.
    let (found, txn) = find_live(db, token_hash, now, lifetimes, Some(txn)).await?;
    let (Some((token, session_id, assurance, user)), Some(txn)) = (found, txn) else {
        return Ok(Rotation::Invalid);
    };
    let outcome = match token.rotated_at {
        None => {
            rotate_writes(&txn, token.id, session_id, successor_hash, now, ip).await?;
            Rotation::Rotated {
                session_id,
                assurance,
                user,
            }
        }
        Some(rotated_at) if now.signed_duration_since(rotated_at) <= delta(lifetimes.grace) => {
            touch(&txn, session_id, now, ip).await?;
            Rotation::Replayed {
                session_id,
                assurance,
                user,
            }
        }
        Some(_) => {
            revoke_session_rows(&txn, &[session_id], now, RevokeReason::ReuseDetected).await?;
            Rotation::ReuseDetected { session_id, user }
        }
    };
    txn.commit().await.context("commit rotate")?;
    Ok(outcome)
}

/// A live token: (token, session id, the session's assurance, user).
type LiveToken = (refresh_token::Model, Uuid, Assurance, User);

/// Finds the token, its session and user, if all are live. Inside `txn` the token row
/// is locked (and `txn` handed back only then: it is rolled back when there is none);
/// without, it is a plain read.
async fn find_live(
    db: &DatabaseConnection,
    token_hash: &str,
    now: DateTime<Utc>,
    lifetimes: &Lifetimes,
    txn: Option<DatabaseTransaction>,
) -> anyhow::Result<(Option<LiveToken>, Option<DatabaseTransaction>)> {
    let mut select = refresh_token::Entity::find()
        .find_also_related(session::Entity)
        .and_also_related(user::Entity)
        .filter(refresh_token::Column::TokenHash.eq(token_hash));
    let found = match &txn {
        Some(txn) => {
            QueryTrait::query(&mut select)
                .lock_with_tables(LockType::Update, [refresh_token::Entity]);
            select.one(txn).await.context("lock session")?
        }
        None => select.one(db).await.context("find session")?,
    };
    let live = match found {
        Some((token, Some(session), Some(user)))
            if session.revoked_at.is_none()
                && session.expires_at > now
                && session.last_used_at + delta(lifetimes.idle) > now
                && user.is_active =>
        {
            Some((token, session.id, session.assurance(), User::from(user)))
        }
        _ => None,
    };
    match (live, txn) {
        (Some(live), txn) => Ok((Some(live), txn)),
        (None, Some(txn)) => {
            txn.rollback().await.context("rollback rotate")?;
            Ok((None, None))
        }
        (None, None) => Ok((None, None)),
    }
}

/// The usual rotation in one statement (its own transaction): lock the token row if the
/// token is live and not yet rotated, mark it rotated, store its successor, mark the
/// session used, and return the session and user. `None` when the token is not in that
/// state, including when a concurrent rotation of it committed first: under the row
/// lock PostgreSQL re-checks the conditions against the row's latest version, so the
/// loser finds no row and the caller's general path answers it (as a replay).
async fn rotate_live_pg(
    db: &DatabaseConnection,
    token_hash: &str,
    successor_hash: &str,
    now: DateTime<Utc>,
    ip: &str,
    idle: Duration,
) -> anyhow::Result<Option<Rotation>> {
    let sql = "WITH live AS ( \
                 SELECT rt.id AS token_id, rt.session_id FROM refresh_tokens rt \
                 JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id \
                 WHERE rt.token_hash = $1 AND rt.rotated_at IS NULL AND s.revoked_at IS NULL \
                   AND s.expires_at > $2 AND s.last_used_at > $3 AND u.is_active \
                 FOR UPDATE OF rt), \
               rotated AS (UPDATE refresh_tokens SET rotated_at = $2 FROM live \
                 WHERE refresh_tokens.id = live.token_id RETURNING live.session_id), \
               touched AS (UPDATE sessions SET last_used_at = $2, ip = $6 FROM rotated \
                 WHERE sessions.id = rotated.session_id), \
               successor AS (INSERT INTO refresh_tokens \
                 (id, session_id, token_hash, created_at, rotated_at) \
                 SELECT $4, session_id, $5, $2, NULL FROM rotated) \
               SELECT rotated.session_id AS rotated_session_id, s.aal AS session_aal, \
                 s.amr AS session_amr, COALESCE(s.auth_time, s.created_at) AS session_auth_time, \
                 u.* FROM rotated \
               JOIN sessions s ON s.id = rotated.session_id JOIN users u ON u.id = s.user_id";
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [
                token_hash.into(),
                now.into(),
                (now - delta(idle)).into(),
                Uuid::now_v7().into(),
                successor_hash.into(),
                ip.into(),
            ],
        ))
        .await
        .context("rotate live refresh token")?;
    let Some(row) = row else {
        return Ok(None);
    };
    let session_id: Uuid = row
        .try_get("", "rotated_session_id")
        .context("rotated session id")?;
    let aal: String = row.try_get("", "session_aal").context("session aal")?;
    let amr: String = row.try_get("", "session_amr").context("session amr")?;
    let auth_time: DateTime<Utc> = row
        .try_get("", "session_auth_time")
        .context("session auth_time")?;
    let user = user::Model::from_query_result(&row, "").context("rotated session user")?;
    Ok(Some(Rotation::Rotated {
        session_id,
        assurance: Assurance::from_stored(&aal, &amr, auth_time),
        user: user.into(),
    }))
}

/// Marks the token rotated, stores its successor and marks the session used: one
/// statement on PostgreSQL (data-modifying CTEs), three on SQLite.
async fn rotate_writes(
    txn: &DatabaseTransaction,
    token_id: Uuid,
    session_id: Uuid,
    successor_hash: String,
    now: DateTime<Utc>,
    ip: &str,
) -> anyhow::Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        let sql = "WITH rotated AS (UPDATE refresh_tokens SET rotated_at = $1 WHERE id = $2), \
                   touched AS (UPDATE sessions SET last_used_at = $1, ip = $6 WHERE id = $3) \
                   INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, rotated_at) \
                   VALUES ($4, $3, $5, $1, NULL)";
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [
                now.into(),
                token_id.into(),
                session_id.into(),
                Uuid::now_v7().into(),
                successor_hash.into(),
                ip.into(),
            ],
        ))
        .await
        .context("rotate refresh token")?;
        return Ok(());
    }
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RotatedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(token_id))
        .exec(txn)
        .await
        .context("mark refresh token rotated")?;
    insert_token(txn, session_id, successor_hash, now).await?;
    touch(txn, session_id, now, ip).await
}

/// Deletes sessions that ended before `before` (expired, revoked, or unused for
/// `idle`), with their refresh tokens (the foreign key cascades) and so their IP and
/// user agent, `batch` at a time; returns how many went. Nothing of such a session can
/// be used any more: its refresh tokens died when it ended, its access tokens long
/// before `before`.
pub async fn purge_ended(
    db: &DatabaseConnection,
    before: DateTime<Utc>,
    idle: Duration,
    batch: u64,
) -> anyhow::Result<u64> {
    let ended = sea_orm::Condition::any()
        .add(session::Column::ExpiresAt.lt(before))
        .add(session::Column::RevokedAt.lt(before))
        .add(session::Column::LastUsedAt.lt(before - delta(idle)));
    super::db::delete_in_batches::<session::Entity>(db, session::Column::Id, ended, batch)
        .await
        .context("purge ended sessions")
}

/// A session ended by `revoke_by_token`.
#[derive(Debug, Clone, Copy)]
pub struct Revoked {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// False when the session had already ended.
    pub was_live: bool,
}

/// Revokes the family of a refresh token, if the token is known.
pub async fn revoke_by_token(
    db: &DatabaseConnection,
    token_hash: &str,
    now: DateTime<Utc>,
    reason: RevokeReason,
) -> anyhow::Result<Option<Revoked>> {
    let Some(token) = find_token(db, token_hash).await? else {
        return Ok(None);
    };
    let revoked = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::Id.eq(token.session_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec_with_returning(db)
        .await
        .context("revoke session")?;
    let user_id = match revoked.first() {
        Some(s) => s.user_id,
        None => {
            let Some(s) = session::Entity::find_by_id(token.session_id)
                .one(db)
                .await?
            else {
                return Ok(None);
            };
            s.user_id
        }
    };
    Ok(Some(Revoked {
        session_id: token.session_id,
        user_id,
        was_live: !revoked.is_empty(),
    }))
}

/// The user's live sessions (not revoked, not expired, used within `idle`), most
/// recently used first.
pub async fn live_for_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
    idle: Duration,
) -> anyhow::Result<Vec<session::Model>> {
    session::Entity::find()
        .filter(live(user_id, now, idle))
        .order_by_desc(session::Column::LastUsedAt)
        .order_by_desc(session::Column::Id)
        .all(db)
        .await
        .context("list live sessions")
}

/// Revokes the user's live sessions among `ids`, or all but `keep` when `ids` is
/// `None`; returns the ids of those it ended. A session of another user, or one that
/// already ended, is left as it is.
pub async fn revoke_of_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    ids: Option<&[Uuid]>,
    keep: Option<Uuid>,
    now: DateTime<Utc>,
    idle: Duration,
    reason: RevokeReason,
) -> anyhow::Result<Vec<Uuid>> {
    let mut condition = live(user_id, now, idle);
    if let Some(ids) = ids {
        condition = condition.add(session::Column::Id.is_in(ids.iter().copied()));
    }
    if let Some(keep) = keep {
        condition = condition.add(session::Column::Id.ne(keep));
    }
    let revoked = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(condition)
        .exec_with_returning(db)
        .await
        .context("revoke sessions of a user")?;
    Ok(revoked.into_iter().map(|s| s.id).collect())
}

fn live(user_id: Uuid, now: DateTime<Utc>, idle: Duration) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(session::Column::UserId.eq(user_id))
        .add(session::Column::RevokedAt.is_null())
        .add(session::Column::ExpiresAt.gt(now))
        .add(session::Column::LastUsedAt.gt(now - delta(idle)))
}

/// Revokes every live session of a user; returns their ids. One statement, however
/// many sessions: no list of ids to bind.
pub async fn revoke_all_for_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
    reason: RevokeReason,
) -> anyhow::Result<Vec<Uuid>> {
    returning_ids(
        db,
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
         WHERE user_id = $3 AND revoked_at IS NULL RETURNING id",
        [now.into(), reason.as_str().into(), user_id.into()],
    )
    .await
    .context("revoke every session of a user")
}

async fn touch(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    now: DateTime<Utc>,
    ip: &str,
) -> anyhow::Result<()> {
    session::Entity::update_many()
        .col_expr(session::Column::LastUsedAt, Expr::value(now))
        .col_expr(session::Column::Ip, Expr::value(ip))
        .filter(session::Column::Id.eq(session_id))
        .exec(db)
        .await
        .context("touch session")?;
    Ok(())
}

async fn revoke_session_rows(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    now: DateTime<Utc>,
    reason: RevokeReason,
) -> anyhow::Result<()> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::Id.is_in(ids.iter().copied()))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await
        .context("revoke sessions")?;
    Ok(())
}

async fn find_token(
    db: &impl ConnectionTrait,
    token_hash: &str,
) -> anyhow::Result<Option<refresh_token::Model>> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(token_hash))
        .one(db)
        .await
        .context("find refresh token")
}

async fn insert_token(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    token_hash: String,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        session_id: Set(session_id),
        token_hash: Set(token_hash),
        created_at: Set(now),
        rotated_at: Set(None),
    }
    .insert(db)
    .await
    .context("insert refresh token")?;
    Ok(())
}

fn delta(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Whether a session is revoked (or unknown), read from its row.
pub async fn is_revoked(db: &impl ConnectionTrait, session_id: Uuid) -> anyhow::Result<bool> {
    let session = session::Entity::find_by_id(session_id)
        .one(db)
        .await
        .context("load session")?;
    Ok(session.is_none_or(|s| s.revoked_at.is_some()))
}

/// Sessions revoked at or after `since`, with when: the revocations whose access
/// tokens may still be live. Read by an instance rebuilding its memory after a gap
/// (a range read on `idx_sessions_revoked_at`).
pub async fn revoked_since(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> anyhow::Result<Vec<(Uuid, DateTime<Utc>)>> {
    let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .column(session::Column::RevokedAt)
        .filter(session::Column::RevokedAt.gte(since))
        .into_tuple()
        .all(db)
        .await
        .context("load recently revoked sessions")?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at)| at.map(|at| (id, at)))
        .collect())
}

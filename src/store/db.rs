use std::time::Duration;

use anyhow::Context;
use migration::MigratorTrait;
use sea_orm::{
    ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, SqliteTransactionMode,
    TransactionOptions, TransactionTrait, sea_query::Query,
};
use secrecy::ExposeSecret;

use crate::config::DatabaseConfig;

/// Opens the pool. SQLite runs in WAL mode with a busy timeout, so readers never block
/// the writer and concurrent writers wait their turn instead of failing.
pub async fn connect(cfg: &DatabaseConfig) -> anyhow::Result<DatabaseConnection> {
    let url = cfg.url.expose_secret();
    if cfg.is_sqlite() {
        create_sqlite_dir(url)?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(cfg.max_connections)
        .min_connections(1)
        .acquire_timeout(cfg.acquire_timeout)
        .connect_timeout(cfg.acquire_timeout)
        .idle_timeout(Duration::from_secs(600))
        // Ping only connections that sat idle (those a restarted server or a proxy may
        // have dropped); a ping before every checkout doubled the round trips of each
        // query.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    Database::connect(options)
        .await
        .context("connect to the database (DATABASE_URL)")
}

/// Any fixed number: the advisory lock that makes instances migrate one at a time.
const MIGRATION_LOCK: i64 = 0x1d3_7117;

/// Applies every pending migration, in one transaction. Instances starting together
/// take turns: on PostgreSQL through an advisory lock, on SQLite through the write lock
/// that `BEGIN IMMEDIATE` takes (later ones wait, then find nothing left to do).
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    let txn = begin_write(db).await.context("begin migrations")?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await
            .context("take the migration lock")?;
    }
    migration::Migrator::up(&txn, None)
        .await
        .context("apply database migrations")?;
    txn.commit().await.context("commit migrations")
}

/// A transaction that will write: on SQLite it takes the write lock at `BEGIN
/// IMMEDIATE`, so it never has to upgrade a read lock and fail; on PostgreSQL rows are
/// locked where needed by `SELECT … FOR UPDATE`.
pub async fn begin_write(db: &DatabaseConnection) -> anyhow::Result<DatabaseTransaction> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
    .context("begin transaction")
}

/// Deletes the rows of `E` that match `condition`, `batch` at a time (short statements,
/// short locks); returns how many went.
pub async fn delete_in_batches<E: EntityTrait>(
    db: &impl ConnectionTrait,
    id: E::Column,
    condition: Condition,
    batch: u64,
) -> Result<u64, DbErr> {
    let mut deleted = 0;
    loop {
        let chunk = Query::select()
            .column(id)
            .from(E::default())
            .cond_where(condition.clone())
            .limit(batch)
            .to_owned();
        let n = E::delete_many()
            .filter(id.in_subquery(chunk))
            .exec(db)
            .await?
            .rows_affected;
        deleted += n;
        if n < batch {
            return Ok(deleted);
        }
    }
}

pub async fn ping(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.ping().await.context("ping the database")
}

/// `sqlite://data/identity.db?mode=rwc` needs `data/` to exist.
fn create_sqlite_dir(url: &str) -> anyhow::Result<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("create the database directory {}", dir.display()))?;
    }
    Ok(())
}

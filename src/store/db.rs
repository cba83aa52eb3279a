use std::time::Duration;

use anyhow::Context;
use migration::MigratorTrait;
use sea_orm::{
    ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, SqliteTransactionMode,
    TransactionOptions, TransactionSession, TransactionTrait, sea_query::Query,
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

/// The most rows one statement writes, or keys one `IN` list names.
///
/// A statement whose text grows with its rows (`VALUES (…), (…)`, `IN ($1, …, $n)`) is
/// a new statement for every count, and each pooled connection prepares and keeps
/// every one it runs (and so does its PostgreSQL backend). Batches of any size from 1
/// to 256 filled those caches with hundreds of large statements: 22 MiB more resident
/// memory after a reset flood (`scripts/bench`). So a list is cut into pieces whose
/// sizes are powers of two up to this: a few statements, each prepared once.
pub const MAX_CHUNK: usize = 64;

/// `items` in pieces whose lengths are powers of two, none above [`MAX_CHUNK`]; for
/// writes, where every row must be written once.
pub fn power_of_two_chunks<T>(items: Vec<T>) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    let mut items = items.into_iter();
    let mut left = items.len();
    while left > 0 {
        let size = if left >= MAX_CHUNK {
            MAX_CHUNK
        } else {
            1 << left.ilog2()
        };
        chunks.push(items.by_ref().take(size).collect());
        left -= size;
    }
    chunks
}

/// Inserts `models` in statements of [`power_of_two_chunks`], all or none: in a
/// transaction of their own (a savepoint, if `db` is one) when there is more than one.
pub async fn insert_in_chunks<A>(
    db: &(impl ConnectionTrait + TransactionTrait),
    models: Vec<A>,
) -> Result<(), DbErr>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    let mut chunks = power_of_two_chunks(models);
    if chunks.len() <= 1 {
        let models = chunks.pop().unwrap_or_default();
        A::Entity::insert_many(models)
            .exec_without_returning(db)
            .await?;
        return Ok(());
    }
    let txn = db.begin().await?;
    for models in chunks {
        A::Entity::insert_many(models)
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await
}

/// `keys` in pieces of [`MAX_CHUNK`], the last one padded (with its last key again)
/// to a power of two; for lookups, where naming a key twice changes nothing.
pub fn padded_chunks<T: Clone>(keys: &[T]) -> Vec<Vec<T>> {
    keys.chunks(MAX_CHUNK)
        .map(|chunk| {
            let mut chunk = chunk.to_vec();
            if let Some(last) = chunk.last().cloned() {
                chunk.resize(chunk.len().next_power_of_two(), last);
            }
            chunk
        })
        .collect()
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    #[test]
    fn writes_are_cut_into_power_of_two_pieces_each_row_once() {
        for n in [0, 1, 2, 3, 7, 63, 64, 65, 100, 256, 257] {
            let chunks = power_of_two_chunks((0..n).collect::<Vec<usize>>());
            assert!(
                chunks
                    .iter()
                    .all(|c| c.len().is_power_of_two() && c.len() <= MAX_CHUNK),
                "{n}: {chunks:?}"
            );
            assert_eq!(chunks.concat(), (0..n).collect::<Vec<_>>(), "{n}");
        }
        let sizes: Vec<usize> = power_of_two_chunks(vec![(); 100])
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [64, 32, 4]);
    }

    #[test]
    fn lookups_are_padded_to_a_power_of_two() {
        let keys: Vec<usize> = (0..100).collect();
        let chunks = padded_chunks(&keys);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, [64, 64]);
        assert_eq!(chunks[1][35], 99);
        assert_eq!(chunks[1][63], 99, "padded with the last key");
        assert_eq!(padded_chunks(&[7, 8, 9]), [vec![7, 8, 9, 9]]);
        assert!(padded_chunks::<u8>(&[]).is_empty());
    }
}

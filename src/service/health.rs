//! What the service says about its dependencies: readiness (`/readyz`) and the gauges
//! read when `/metrics` is scraped. The HTTP layer asks here, never a pool or a store.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::DbBackend;
use tokio::sync::Mutex;

use super::Deps;
use crate::{
    metrics::Metrics,
    store::{db, outbox},
};

/// How long one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A round trip slower than this is shown as `degraded: slow`. A ping on a healthy
/// network takes well under a millisecond; a hundred times that is a real problem
/// (every request that needs the dependency pays it), not noise.
const SLOW_CHECK: Duration = Duration::from_millis(100);

/// How long a readiness answer is reused: `/readyz` called in a loop costs the
/// database one round trip a second, not one per call.
const READINESS_TTL: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// How long a refusal for want of a hashing place keeps readiness degraded.
const HASHING_RECENT: Duration = Duration::from_secs(5);

/// The outcome of one dependency check; the text names no secret (no URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ok,
    /// Working, but not as it should (slow, saturated, falling behind): shown, while
    /// the instance stays in rotation. A dependency every instance shares being slow
    /// must not take them all out of the load balancer at once.
    Degraded(&'static str),
    /// Not working: the instance is not ready.
    Failed(&'static str),
}

impl Check {
    pub fn is_ok(&self) -> bool {
        *self == Self::Ok
    }

    /// Whether the instance can serve with this (ok or degraded).
    pub fn is_serving(&self) -> bool {
        !matches!(self, Self::Failed(_))
    }
}

/// What `/readyz` reports: each dependency by the name it is shown under.
#[derive(Clone)]
pub struct Readiness {
    pub checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    /// Ready unless a check failed; a degraded check still serves.
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, c)| c.is_serving())
    }

    /// Whether every check is fully ok.
    pub fn is_healthy(&self) -> bool {
        self.checks.iter().all(|(_, c)| c.is_ok())
    }
}

/// A readiness answer and when it was known.
type Checked = (DateTime<Utc>, Readiness);

#[derive(Clone)]
pub struct HealthService {
    deps: Deps,
    /// The last answer and when it was known (by the injected clock).
    last: Arc<Mutex<Option<Checked>>>,
    /// The checks that were slow last time.
    slow: Arc<Mutex<Vec<&'static str>>>,
}

impl HealthService {
    pub fn new(deps: Deps) -> Self {
        Self {
            deps,
            last: Arc::default(),
            slow: Arc::default(),
        }
    }

    /// Whether the database and the ephemeral stores answer in time, checked together
    /// at most once every `READINESS_TTL`; callers meanwhile share the last answer,
    /// and concurrent callers wait for the one check under way.
    pub async fn readiness(&self) -> Readiness {
        let mut last = self.last.lock().await;
        let now = self.deps.clock.now();
        if let Some((at, readiness)) = last.as_ref()
            && now >= *at
            && now - *at < READINESS_TTL
        {
            return readiness.clone();
        }
        let deps = &self.deps;
        deps.metrics
            .counter("identity_readiness_checks_total", &[])
            .increment(1);
        let (database, ephemeral) =
            tokio::join!(check(db::ping(&deps.db)), check(deps.ephemeral.ping()));
        let database = match database {
            // The server may be fine: every connection is taken (slow queries, a lock).
            Check::Failed(_) if pool_exhausted(&deps.db) => Check::Failed("pool exhausted"),
            other => other,
        };
        let mut readiness = Readiness {
            checks: vec![
                ("database", database),
                (deps.ephemeral.kind(), ephemeral),
                // What the outbox worker last saw of the SMTP server (memory, no I/O).
                ("mail", deps.outbox.check()),
                ("password_hashing", self.hashing()),
            ],
        };
        // One slow round trip is a hiccup (a busy host, a new connection); slow twice
        // in a row is shown.
        let mut raw = self.slow.lock().await;
        let was_slow = std::mem::take(&mut *raw);
        for (name, check) in &mut readiness.checks {
            if *check == Check::Degraded("slow") {
                raw.push(*name);
                if !was_slow.contains(name) {
                    *check = Check::Ok;
                }
            }
        }
        drop(raw);
        *last = Some((deps.clock.now(), readiness.clone()));
        readiness
    }

    /// Degraded while every hashing place is taken, or a login found none within
    /// `HASHING_RECENT`: logins are being refused (`RATE_LIMITED`), everything else
    /// still works. From the hasher's counters, no I/O.
    fn hashing(&self) -> Check {
        let saturation = self.deps.hasher.saturation();
        if saturation.is_full() {
            Check::Degraded("saturated: every place in the queue is taken")
        } else if saturation.last_full.is_some_and(|ago| ago < HASHING_RECENT) {
            Check::Degraded("saturated: logins refused for want of a place just now")
        } else {
            Check::Ok
        }
    }

    /// Sets the gauges that are read rather than counted (pool usage, mirror trust,
    /// outbox backlog) and returns the recorder to render.
    pub async fn scrape(&self) -> &Metrics {
        let deps = &self.deps;
        let metrics = &deps.metrics;
        let (size, idle, max) = pool_usage(&deps.db);
        let idle = u32::try_from(idle).unwrap_or(u32::MAX);
        metrics
            .gauge("identity_db_pool_connections", &[("state", "idle")])
            .set(f64::from(idle));
        metrics
            .gauge("identity_db_pool_connections", &[("state", "in_use")])
            .set(f64::from(size.saturating_sub(idle)));
        metrics
            .gauge("identity_db_pool_max_connections", &[])
            .set(f64::from(max));
        let trusted = deps.ephemeral.revocations.mirror_trusted();
        metrics
            .gauge("identity_local_state_trusted", &[])
            .set(if trusted { 1.0 } else { 0.0 });
        match outbox::backlog(&deps.db).await {
            Ok(backlog) => metrics
                .gauge("identity_outbox_backlog", &[])
                .set(backlog as f64),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot count the outbox backlog")
            }
        }
        metrics
    }
}

/// (connections, idle, maximum) of the database pool.
fn pool_usage(db: &sea_orm::DatabaseConnection) -> (u32, usize, u32) {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        _ => (0, 0, 0),
    }
}

/// Whether every connection the pool may open is open and in use.
fn pool_exhausted(db: &sea_orm::DatabaseConnection) -> bool {
    let (size, idle, max) = pool_usage(db);
    max > 0 && size >= max && idle == 0
}

/// Runs one check with a deadline; an answer slower than `SLOW_CHECK` is degraded.
async fn check(fut: impl Future<Output = anyhow::Result<()>>) -> Check {
    let started = std::time::Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
        Ok(Ok(())) if started.elapsed() > SLOW_CHECK => Check::Degraded("slow"),
        Ok(Ok(())) => Check::Ok,
        Ok(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "readiness check failed");
            Check::Failed("unreachable")
        }
        Err(_) => Check::Failed("timed out"),
    }
}

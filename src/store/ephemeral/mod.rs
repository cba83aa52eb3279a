//! Short-lived security state outside the database, split by what the services ask
//! of it:
//!
//! - [`ResetTokenStore`]: password-reset tokens, kept only as hashes, with a TTL,
//!   single use;
//! - [`RevocationStore`]: the sessions whose access tokens must fail at once, and
//!   recently read user profiles, both mirrored in each instance's memory
//!   ([`LocalMirror`]) and kept current across instances by Redis pub/sub;
//! - [`CounterStore`]: per-account counters (login back-off, reset-mail quota);
//! - [`IpLimitStore`]: per-client-IP budgets shared by every instance (Redis only:
//!   without it, each instance limits in process, `security::per_ip_limits`);
//! - [`FlowStore`]: the state of flows that span requests (a pending TOTP enrolment,
//!   the second step of a login), each under a random key, with a TTL, taken atomically
//!   so that exactly one instance can finish a flow.
//!
//! One backend implements all four: Redis when `REDIS_URL` is set ([`RedisStore`]),
//! in-process otherwise ([`MemoryStore`]). [`EphemeralStores`] hands each service
//! the part it needs.

mod memory;
mod mirror;
mod redis;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    clock::Clock,
    config::RedisConfig,
    domain::{backoff::ExponentialBackoff, user::User},
};

pub use memory::MemoryStore;
pub use mirror::{LocalMirror, RebuildMark, TRUST_WINDOW};
pub use redis::RedisStore;

#[async_trait::async_trait]
pub trait ResetTokenStore: Send + Sync + 'static {
    /// Stores a reset token hash for a user until `expires_at`, replacing (and
    /// invalidating) any earlier token of that user.
    async fn put_reset_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// The user a live reset token belongs to, without consuming it.
    async fn peek_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Uuid>>;

    /// Consumes a reset token: of any number of concurrent callers, at most one gets
    /// `Some`.
    async fn take_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Uuid>>;

    /// Cancels the user's open reset token, if any (`changePassword`): a link mailed
    /// before the change no longer works.
    async fn cancel_reset_tokens(&self, user_id: Uuid) -> anyhow::Result<()>;
}

#[async_trait::async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Marks sessions as revoked until `until` (the latest expiry of an access token
    /// issued for them).
    async fn revoke_sessions(
        &self,
        session_ids: &[Uuid],
        until: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// `Some` when the store is sure; `None` when its memory may be incomplete and it
    /// holds no mark for the session (Redis may have lost it): the caller must ask the
    /// database. A miss is never taken as "not revoked" unless the memory is trusted.
    async fn is_session_revoked(
        &self,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<bool>>;

    /// This instance's memory of revocations and user profiles.
    fn mirror(&self) -> &LocalMirror;

    /// Whether this instance's memory of revocations is complete right now (checks
    /// then cost no round trip).
    fn mirror_trusted(&self) -> bool {
        self.mirror().is_trusted()
    }

    /// A user's profile, if this instance holds a copy it can trust right now.
    fn cached_user(&self, id: Uuid) -> Option<User> {
        self.mirror().user(id)
    }

    /// Keeps a profile just read from the database.
    fn cache_user(&self, user: &User) {
        self.mirror().put_user(user);
    }

    /// The user's record changed: every instance drops its copy.
    async fn user_changed(&self, id: Uuid) -> anyhow::Result<()>;

    /// The user signed in at `at`, and nothing else of the record changed: every
    /// instance moves `lastLogin` on the copy it holds, instead of dropping it (the
    /// next read of a user who just signed in is then no database round trip).
    async fn user_signed_in(&self, id: Uuid, at: DateTime<Utc>) -> anyhow::Result<()>;
}

#[async_trait::async_trait]
pub trait CounterStore: Send + Sync + 'static {
    /// Starts a login attempt on an account from a client, in one step. While this
    /// client cools down on this account, or the account as a whole cools down and the
    /// client is not known to it, the answer is `Some(wait)` and nothing is counted;
    /// otherwise the attempt is counted, for the client and for the account, before the
    /// password is checked (so concurrent attempts cannot slip past the limit), and a
    /// count that reaches its free attempts starts its next cool-down.
    async fn begin_login_attempt(
        &self,
        keys: &LoginKeys,
        now: DateTime<Utc>,
        limits: &LoginLimits,
    ) -> anyhow::Result<Option<Duration>>;

    /// The client signed in: its attempts on the account are forgotten, the account's
    /// count loses this (successful) attempt but keeps the rest, and the client is
    /// known to the account for `known_for`.
    async fn login_succeeded(
        &self,
        keys: &LoginKeys,
        now: DateTime<Utc>,
        known_for: Duration,
    ) -> anyhow::Result<()>;

    /// Forgets the account's attempts, in all and from this client (after a password
    /// reset).
    async fn clear_login_attempts(&self, keys: &LoginKeys) -> anyhow::Result<()>;

    /// Counts one event under `key` in a window that starts with the first event and
    /// lasts `window`; returns the count including this one.
    async fn count_in_window(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> anyhow::Result<u64>;
}

/// One per-client budget of a request: GCRA, a burst of `burst`, replenished one
/// request every `interval` (governor's `Quota::per_minute(n)` is a burst of `n` and
/// an interval of a minute over `n`).
#[derive(Debug, Clone)]
pub struct IpBucket {
    /// Hashes only, no address in clear. Every bucket of one check holds the same part
    /// in braces, so on a Redis Cluster they share a slot.
    pub key: String,
    pub interval: Duration,
    pub burst: u32,
}

/// What one call made of `n` requests in a row from one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBudget {
    /// The first `allowed` requests go ahead.
    pub allowed: u32,
    /// Why the others are refused, if there are any: the bucket with the longest wait
    /// (an index into the buckets) and that wait.
    pub refused_by: Option<(usize, Duration)>,
}

#[async_trait::async_trait]
pub trait IpLimitStore: Send + Sync + 'static {
    /// Counts `requests` requests in a row against every bucket, in one step, each
    /// against all of them or none: those that fit go ahead, the rest cost nothing.
    async fn take_ip_budget(
        &self,
        buckets: &[IpBucket],
        requests: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<IpBudget>;
}

#[async_trait::async_trait]
pub trait FlowStore: Send + Sync + 'static {
    /// Keeps `value` under `key` until `expires_at` (replacing what was there).
    async fn put_flow(
        &self,
        key: &str,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// The value under `key`, if it has not expired at `now`; it stays.
    async fn get_flow(&self, key: &str, now: DateTime<Utc>) -> anyhow::Result<Option<String>>;

    /// Removes the value under `key` and returns it if it had not expired: of any
    /// number of concurrent callers, on any instance, at most one gets `Some`.
    async fn take_flow(&self, key: &str, now: DateTime<Utc>) -> anyhow::Result<Option<String>>;
}

/// A flow value with its expiry, checked against the injected clock (the store's own
/// TTL only cleans up).
fn encode_flow(value: &str, expires_at: DateTime<Utc>) -> String {
    format!("{}:{value}", expires_at.timestamp_millis())
}

fn decode_flow(stored: &str, now: DateTime<Utc>) -> Option<String> {
    let (expires, value) = stored.split_once(':')?;
    let expires: i64 = expires.parse().ok()?;
    (now.timestamp_millis() < expires).then(|| value.to_owned())
}

/// What readiness asks of the backend behind the three stores.
#[async_trait::async_trait]
trait Reachable: Send + Sync + 'static {
    async fn ping(&self) -> anyhow::Result<()>;
}

/// The three stores, on one backend. Cheap to clone.
#[derive(Clone)]
pub struct EphemeralStores {
    pub reset_tokens: Arc<dyn ResetTokenStore>,
    pub revocations: Arc<dyn RevocationStore>,
    pub counters: Arc<dyn CounterStore>,
    pub flows: Arc<dyn FlowStore>,
    /// Per-client-IP budgets shared across instances: `Some` on Redis only.
    pub ip_limits: Option<Arc<dyn IpLimitStore>>,
    backend: Arc<dyn Reachable>,
    kind: &'static str,
}

/// Where revocations are kept for good: the sessions table. An instance on Redis reads
/// it back after any gap in what it heard, so no revocation depends on Redis alone.
#[derive(Clone)]
pub struct RevocationSource {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    /// How long an access token issued just before a revocation may still be
    /// accepted (its lifetime plus the verification leeway).
    pub lookback: Duration,
    /// Where rebuilds are counted and timed.
    pub metrics: crate::metrics::Metrics,
}

impl RevocationSource {
    /// The sessions revoked within `lookback`, each with the time (Unix ms) until which
    /// one of its access tokens may still be presented.
    async fn load(&self) -> anyhow::Result<HashMap<Uuid, i64>> {
        let lookback = chrono::Duration::from_std(self.lookback)?;
        let since = self.clock.now() - lookback;
        let rows = crate::store::sessions::revoked_since(&self.db, since).await?;
        Ok(rows
            .into_iter()
            .map(|(id, at)| (id, (at + lookback).timestamp_millis()))
            .collect())
    }
}

impl EphemeralStores {
    /// Redis with `REDIS_URL` (rebuilding from `source` after gaps), the in-process
    /// backend without.
    pub async fn connect(
        redis: Option<&RedisConfig>,
        source: RevocationSource,
    ) -> anyhow::Result<Self> {
        Ok(match redis {
            Some(cfg) => {
                let redis = Arc::new(RedisStore::connect(cfg, source).await?);
                Self {
                    ip_limits: Some(redis.clone()),
                    ..Self::on(redis, "redis")
                }
            }
            None => Self::in_process(),
        })
    }

    pub fn in_process() -> Self {
        Self::on(Arc::new(MemoryStore::new()), "tokenStore")
    }

    fn on<B>(backend: Arc<B>, kind: &'static str) -> Self
    where
        B: ResetTokenStore + RevocationStore + CounterStore + FlowStore + Reachable,
    {
        Self {
            reset_tokens: backend.clone(),
            revocations: backend.clone(),
            counters: backend.clone(),
            flows: backend.clone(),
            ip_limits: None,
            backend,
            kind,
        }
    }

    /// The name `/readyz` reports the backend under.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Reachability, for `/readyz`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.backend.ping().await
    }
}

/// The counter-store keys of a login attempt on one account from one client: hashes,
/// so no address, IP or email is kept in clear. The client and known keys hold the
/// account key (the part in braces), so on a Redis Cluster all three share a slot.
#[derive(Debug, Clone)]
pub struct LoginKeys {
    /// The account's attempts from every client.
    pub account: String,
    /// The account's attempts from this client.
    pub client: String,
    /// Present while this client is known to the account (it signed in recently).
    pub known: String,
}

/// The back-off per (account, client), and the looser one per account that a known
/// client does not wait for.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub client: Backoff,
    pub account: Backoff,
}

/// Exponential back-off for one account's login attempts: `free` attempts, then a wait
/// of `delays.base`, doubling with each further attempt up to `delays.max`; forgotten
/// after `window` without attempts. Bounded, so nobody can lock an account for good.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub free: u32,
    pub delays: ExponentialBackoff,
    pub window: Duration,
}

impl Backoff {
    /// The wait after attempt number `attempt` (1-based), if any.
    pub fn delay_after(&self, attempt: u64) -> Option<Duration> {
        let step = attempt.checked_sub(u64::from(self.free))?;
        Some(self.delays.delay(step))
    }
}

/// What a reset-token entry holds: its user and its expiry (checked against the
/// injected clock; the store's own TTL only cleans up).
fn encode_entry(user_id: Uuid, expires_at: DateTime<Utc>) -> String {
    format!("{user_id}:{}", expires_at.timestamp_millis())
}

fn decode_entry(value: &str, now: DateTime<Utc>) -> Option<Uuid> {
    let (user, expires) = value.split_once(':')?;
    let expires: i64 = expires.parse().ok()?;
    (now.timestamp_millis() < expires).then_some(())?;
    user.parse().ok()
}

/// Milliseconds from `now` to `until`, at least 1 (stores reject a zero TTL).
fn ttl_ms(until: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (until - now).num_milliseconds().max(1)
}

/// Real time left until `until`, for store-side expiry.
fn ttl_from_now(until: DateTime<Utc>) -> Duration {
    Duration::from_millis(u64::try_from(ttl_ms(until, crate::clock::wall_now())).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        let b = Backoff {
            free: 3,
            delays: ExponentialBackoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(60),
            },
            window: Duration::from_secs(600),
        };
        let delays: Vec<_> = (1..=10)
            .map(|n| b.delay_after(n).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            delays,
            [
                None,
                None,
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(60),
                Some(60),
                Some(60)
            ]
        );
        assert_eq!(b.delay_after(u64::MAX), Some(Duration::from_secs(60)));
    }

    #[test]
    fn flows_expire_by_the_given_clock_and_keep_their_value() {
        let now = crate::clock::wall_now();
        let stored = encode_flow("a:b:{\"c\":1}", now + chrono::Duration::seconds(60));
        assert_eq!(decode_flow(&stored, now).as_deref(), Some("a:b:{\"c\":1}"));
        assert_eq!(
            decode_flow(&stored, now + chrono::Duration::seconds(60)),
            None
        );
        assert_eq!(decode_flow("garbage", now), None);
    }

    #[test]
    fn entries_expire_by_the_given_clock() {
        let now = crate::clock::wall_now();
        let user = Uuid::new_v4();
        let entry = encode_entry(user, now + chrono::Duration::seconds(60));
        assert_eq!(decode_entry(&entry, now), Some(user));
        assert_eq!(
            decode_entry(&entry, now + chrono::Duration::seconds(61)),
            None
        );
        assert_eq!(decode_entry("garbage", now), None);
    }
}

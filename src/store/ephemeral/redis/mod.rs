//! The Redis backend of the ephemeral stores, through a `fred` connection pool and a
//! subscriber connection for the events channel. Every key starts with the configured
//! prefix, so deployments (and tests) can share a server.
//!
//! The same code runs on one server, a Sentinel set and a Redis Cluster (`fred` picks
//! the topology from the URL, see `config::redis`). What a cluster asks of it:
//!
//! - **One slot per script.** A script runs on the node of its first key and may only
//!   touch keys it declares in `KEYS`, all in one hash slot. The keys a script shares
//!   carry the same part in braces (a hash tag): the per-account login keys
//!   `login:{<account>}…`, the per-IP buckets `ip:{<client>}:<class>`. The reset-token
//!   keys cannot share a slot (a token is looked up without its user), so no script
//!   touches two of them (see `reset_tokens`). Every other command names one key;
//!   there are no transactions.
//! - **Every primary.** The one scan, of revoked sessions when the mirror is rebuilt,
//!   runs on every primary (`revocations::read_revocations`).
//! - **Scripts everywhere.** `evalsha_with_reload` loads a script on every primary
//!   when a node answers `NOSCRIPT` (a new or failed-over primary).
//! - **Sharded pub/sub.** On a cluster the events channel is a shard channel
//!   (`SPUBLISH`/`SSUBSCRIBE`, Redis 7): publisher and subscribers all talk to the
//!   primary that owns the channel's slot, so, as on one server, every subscriber has
//!   the message before the publish returns, and a revocation holds on every instance
//!   by the time the client that made it hears back. Classic `PUBLISH` would be
//!   broadcast over the cluster bus after the reply, later on every other node: a
//!   window in which another instance would still accept the revoked token. The
//!   channel's one slot gains nothing from sharding otherwise; its primary carries
//!   the events (a few small messages a second per instance). On one server and on
//!   Sentinel it stays classic pub/sub, which every Redis version has. When the
//!   channel's node fails over, the subscriber reconnects and subscribes again, and the
//!   reconnection makes the instance distrust its mirror until it has rebuilt it, as
//!   after any gap.
//!
//! On Sentinel, `fred` asks the sentinels for the primary at every (re)connection. When
//! the sentinels demote the old primary (seconds after promoting a replica, once they
//! see it again) they kill its clients, so every instance reconnects to the new
//! primary, distrusts its mirror, and rebuilds it from the database, writing back to
//! Redis the revocations it lacks. Until then an instance may still write to the old
//! primary, and those writes are lost with it, as are those a replica had not received
//! (replication is asynchronous): nothing depends on Redis alone for a revocation, a
//! lost reset link can be asked for again, and a limit loses at most those moments'
//! counts.

mod counters;
mod events;
mod flows;
mod ip_limits;
mod reset_tokens;
mod revocations;

use std::sync::Arc;

use anyhow::Context;
use fred::{
    interfaces::{ClientLike, PubsubInterface},
    prelude::{Builder, Client, Pool, ReconnectPolicy},
    types::{config::Config as FredConfig, scripts::Script},
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{LocalMirror, Reachable, RevocationSource};
use crate::config::{RedisConfig, RedisTopology};

/// The longest a publish waits to hear its own event back (see `publish`).
const ECHO_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// The Redis backend.
pub struct RedisStore {
    pool: Pool,
    prefix: String,
    login_script: Script,
    login_succeeded_script: Script,
    count_script: Script,
    ip_limit_script: Script,
    /// Revocations and profiles in memory, fed by `channel`.
    local: Arc<LocalMirror>,
    /// Every instance publishes revocations, user changes and heartbeats here.
    channel: Channel,
    /// This instance's name and event counter on the channel, so that listeners can
    /// tell when they missed one of its events.
    sequence: Arc<events::Sequence>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RedisStore {
    pub async fn connect(cfg: &RedisConfig, source: RevocationSource) -> anyhow::Result<Self> {
        let config = FredConfig::from_url(cfg.url.expose_secret()).context("parse REDIS_URL")?;
        let pool = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = cfg.command_timeout;
                c.internal_command_timeout = cfg.command_timeout;
                c.max_command_attempts = 2;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = cfg.command_timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_pool(cfg.pool_size)
            .context("build the Redis pool")?;
        pool.init().await.context("connect to Redis (REDIS_URL)")?;

        let subscriber = Builder::from_config(FredConfig::from_url(cfg.url.expose_secret())?)
            .with_connection_config(|c| c.connection_timeout = cfg.command_timeout)
            // Room for bursts (thousands of revocations a second under load): a listener
            // that falls behind loses messages, and must distrust its memory.
            .with_performance_config(|p| p.broadcast_channel_capacity = 2_048)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_subscriber_client()
            .context("build the Redis subscriber")?;
        subscriber
            .init()
            .await
            .context("connect the Redis subscriber")?;
        // Subscribes again after every reconnection.
        let resubscriber = subscriber.manage_subscriptions();
        let channel = Channel {
            name: format!("{}events", cfg.key_prefix),
            sharded: cfg.topology == RedisTopology::Cluster,
        };
        if channel.sharded {
            subscriber.ssubscribe(channel.name.clone()).await
        } else {
            subscriber.subscribe(channel.name.clone()).await
        }
        .context("subscribe to the events channel")?;

        let local = Arc::new(LocalMirror::follower());
        let sequence = Arc::new(events::Sequence::new());
        let listener = tokio::spawn(revocations::listen(
            subscriber,
            pool.clone(),
            Arc::clone(&local),
            cfg.key_prefix.clone(),
            source,
            Arc::clone(&sequence),
        ));
        let heartbeat = tokio::spawn(revocations::beat(
            pool.clone(),
            channel.clone(),
            Arc::clone(&sequence),
        ));
        Ok(Self {
            pool,
            prefix: cfg.key_prefix.clone(),
            login_script: Script::from_lua(counters::BEGIN_LOGIN_ATTEMPT),
            login_succeeded_script: Script::from_lua(counters::LOGIN_SUCCEEDED),
            count_script: Script::from_lua(counters::COUNT_IN_WINDOW),
            ip_limit_script: Script::from_lua(ip_limits::TAKE_IP_BUDGET),
            local,
            channel,
            sequence,
            tasks: vec![
                resubscriber.abort_handle(),
                listener.abort_handle(),
                heartbeat.abort_handle(),
            ],
        })
    }

    /// Publishes a numbered event. Its number is taken even if the publish fails, so
    /// listeners see the gap at this instance's next heartbeat; this instance stops
    /// trusting its own memory too (it rebuilds, and writes back, when Redis answers).
    ///
    /// Returns once this instance's own listener has heard the event back (at most
    /// `ECHO_WAIT`): Redis writes an event to every subscriber in one pass, but may send
    /// the publisher its reply first, so without the wait a client told "revoked"
    /// could reach another instance before the event does. With it, a revocation holds
    /// on every instance by the time the caller answers.
    async fn publish(&self, event: impl FnOnce(Uuid, u64) -> events::Event) -> anyhow::Result<()> {
        let seq = self.sequence.next();
        let event = event(self.sequence.publisher(), seq);
        let sent = match self.connected() {
            Ok(client) => self
                .channel
                .publish(client, event.encode())
                .await
                .context("publish an event"),
            Err(error) => Err(error),
        };
        if sent.is_err() {
            self.local.distrust();
        } else if !self.sequence.echo(seq, ECHO_WAIT).await {
            tracing::debug!(seq, "own event not heard back in time");
        }
        sent.map(drop)
    }

    fn reset_key(&self, token_hash: &str) -> String {
        format!("{}reset:token:{token_hash}", self.prefix)
    }

    fn reset_user_key(&self, user_id: Uuid) -> String {
        format!("{}reset:user:{user_id}", self.prefix)
    }

    fn revoked_key(&self, session_id: Uuid) -> String {
        format!("{}revoked:sid:{session_id}", self.prefix)
    }

    fn flow_key(&self, key: &str) -> String {
        format!("{}flow:{key}", self.prefix)
    }

    fn counter_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Fails at once while disconnected, instead of queueing until the command
    /// timeout: callers have a fallback, and answers must stay fast during an outage.
    /// After a failover the pooled connections come back one by one: any that is up
    /// will do.
    fn connected(&self) -> anyhow::Result<&Client> {
        let client = self.pool.next_connected();
        anyhow::ensure!(client.is_connected(), "Redis is not connected");
        Ok(client)
    }

    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }
}

/// The events channel: a shard channel on a cluster, a classic one elsewhere (see the
/// module).
#[derive(Clone)]
struct Channel {
    name: String,
    sharded: bool,
}

impl Channel {
    async fn publish(&self, client: &Client, message: String) -> Result<i64, fred::error::Error> {
        if self.sharded {
            client.spublish(self.name.clone(), message).await
        } else {
            client.publish(self.name.clone(), message).await
        }
    }
}

#[async_trait::async_trait]
impl Reachable for RedisStore {
    async fn ping(&self) -> anyhow::Result<()> {
        let _: String = self.connected()?.ping(None).await.context("ping Redis")?;
        Ok(())
    }
}

use anyhow::Context;
use chrono::{DateTime, Utc};
use fred::{
    interfaces::{ClientLike, EventInterface, KeysInterface, PubsubInterface},
    prelude::{Builder, Client, Pool, ReconnectPolicy},
    types::{Expiration, config::Config as FredConfig, scripts::Script},
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use std::time::Duration;

use std::sync::Arc;

use super::{Backoff, LocalState, TokenStore, decode_entry, encode_entry, ttl_from_now};
use crate::config::RedisConfig;

/// Replaces a user's reset token atomically: the old token stops working at the same
/// moment the new one starts.
/// KEYS[1] user key, KEYS[2] new token key; ARGV[1] new token key, ARGV[2] entry,
/// ARGV[3] TTL in ms.
const PUT_RESET_TOKEN: &str = r#"
local old = redis.call('GET', KEYS[1])
if old then redis.call('DEL', old) end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"#;

/// Counts a login attempt unless the account is cooling down; starts the next
/// cool-down once the free attempts are used. Returns the wait in ms, or 0 to go ahead.
/// KEYS[1] attempts hash; ARGV now_ms, free, base_ms, max_ms, window_ms.
const BEGIN_LOGIN_ATTEMPT: &str = r#"
local now = tonumber(ARGV[1])
local wait_until = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if wait_until > now then return wait_until - now end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local free = tonumber(ARGV[2])
if n >= free then
  local delay = tonumber(ARGV[3]) * (2 ^ math.min(n - free, 30))
  delay = math.min(delay, tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'until', string.format('%d', now + delay))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 0
"#;

/// INCR with the window's expiry set by the first event. KEYS[1] counter; ARGV window_ms.
const COUNT_IN_WINDOW: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"#;

/// The Redis token store, through a `fred` connection pool. Every key starts with the
/// configured prefix, so deployments (and tests) can share a server.
pub struct RedisTokenStore {
    pool: Pool,
    prefix: String,
    put_script: Script,
    login_script: Script,
    count_script: Script,
    /// Revocations and profiles in memory, fed by `channel`.
    local: Arc<LocalState>,
    /// Every instance publishes revocations, user changes and heartbeats here.
    channel: String,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for RedisTokenStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How often each instance says it is alive on the channel.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(250);

/// A message on the channel.
enum Event {
    Heartbeat,
    Revoked { until_ms: i64, sessions: Vec<Uuid> },
    UserChanged(Uuid),
}

impl Event {
    fn encode(&self) -> String {
        match self {
            Self::Heartbeat => "h".into(),
            Self::Revoked { until_ms, sessions } => {
                let ids: Vec<String> = sessions.iter().map(Uuid::to_string).collect();
                format!("r:{until_ms}:{}", ids.join(","))
            }
            Self::UserChanged(id) => format!("u:{id}"),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        match parts.next()? {
            "h" => Some(Self::Heartbeat),
            "u" => parts.next()?.parse().ok().map(Self::UserChanged),
            "r" => {
                let until_ms = parts.next()?.parse().ok()?;
                let sessions = parts
                    .next()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .ok()?;
                Some(Self::Revoked { until_ms, sessions })
            }
            _ => None,
        }
    }
}

impl RedisTokenStore {
    pub async fn connect(cfg: &RedisConfig) -> anyhow::Result<Self> {
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
        let channel = format!("{}events", cfg.key_prefix);
        subscriber
            .subscribe(channel.clone())
            .await
            .context("subscribe to the events channel")?;

        let local = Arc::new(LocalState::follower());
        let listener = tokio::spawn(listen(
            subscriber,
            pool.clone(),
            Arc::clone(&local),
            cfg.key_prefix.clone(),
        ));
        let heartbeat = tokio::spawn(beat(pool.clone(), channel.clone()));
        Ok(Self {
            pool,
            prefix: cfg.key_prefix.clone(),
            put_script: Script::from_lua(PUT_RESET_TOKEN),
            login_script: Script::from_lua(BEGIN_LOGIN_ATTEMPT),
            count_script: Script::from_lua(COUNT_IN_WINDOW),
            local,
            channel,
            tasks: vec![
                resubscriber.abort_handle(),
                listener.abort_handle(),
                heartbeat.abort_handle(),
            ],
        })
    }

    async fn publish(&self, event: Event) -> anyhow::Result<()> {
        let _: i64 = self
            .connected()?
            .publish(self.channel.clone(), event.encode())
            .await
            .context("publish an event")?;
        Ok(())
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

    fn attempts_key(&self, account: &str) -> String {
        format!("{}login:{account}", self.prefix)
    }

    /// Fails at once while disconnected, instead of queueing until the command
    /// timeout: callers have a fallback, and answers must stay fast during an outage.
    fn connected(&self) -> anyhow::Result<&Client> {
        let client = self.pool.next();
        anyhow::ensure!(client.is_connected(), "Redis is not connected");
        Ok(client)
    }

    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }
}

#[async_trait::async_trait]
impl TokenStore for RedisTokenStore {
    async fn put_reset_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let token_key = self.reset_key(token_hash);
        let ttl = i64::try_from(ttl_from_now(expires_at).as_millis()).unwrap_or(i64::MAX);
        let _: i64 = self
            .put_script
            .evalsha_with_reload(
                self.connected()?,
                vec![self.reset_user_key(user_id), token_key.clone()],
                vec![
                    token_key,
                    encode_entry(user_id, expires_at),
                    ttl.to_string(),
                ],
            )
            .await
            .context("store reset token")?;
        Ok(())
    }

    async fn peek_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Uuid>> {
        let entry: Option<String> = self
            .connected()?
            .get(self.reset_key(token_hash))
            .await
            .context("read reset token")?;
        Ok(entry.and_then(|e| decode_entry(&e, now)))
    }

    async fn take_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Uuid>> {
        // GETDEL is atomic: one caller gets the entry, the others nothing.
        let entry: Option<String> = self
            .connected()?
            .getdel(self.reset_key(token_hash))
            .await
            .context("consume reset token")?;
        Ok(entry.and_then(|e| decode_entry(&e, now)))
    }

    async fn revoke_sessions(
        &self,
        session_ids: &[Uuid],
        until: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        // This instance knows at once, whatever happens to the rest.
        self.local.revoke(
            session_ids,
            until.timestamp_millis(),
            Utc::now().timestamp_millis(),
        );
        let ttl = i64::try_from(ttl_from_now(until).as_millis()).unwrap_or(i64::MAX);
        for id in session_ids {
            let _: () = self
                .connected()?
                .set(
                    self.revoked_key(*id),
                    until.timestamp_millis(),
                    Some(Expiration::PX(ttl)),
                    None,
                    false,
                )
                .await
                .context("mark session revoked")?;
        }
        // Stored first, then announced: an instance that hears it, or that reads the
        // keys after a gap, sees the same thing.
        self.publish(Event::Revoked {
            until_ms: until.timestamp_millis(),
            sessions: session_ids.to_vec(),
        })
        .await
    }

    async fn is_session_revoked(
        &self,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        if self.local.is_trusted() {
            return Ok(self.local.is_revoked(session_id, now.timestamp_millis()));
        }
        let until: Option<i64> = self
            .connected()?
            .get(self.revoked_key(session_id))
            .await
            .context("check session revocation")?;
        Ok(until.is_some_and(|ms| ms > now.timestamp_millis()))
    }

    fn local(&self) -> &LocalState {
        &self.local
    }

    async fn user_changed(&self, id: Uuid) -> anyhow::Result<()> {
        self.local.forget_user(id);
        self.publish(Event::UserChanged(id)).await
    }

    async fn begin_login_attempt(
        &self,
        account: &str,
        now: DateTime<Utc>,
        backoff: &Backoff,
    ) -> anyhow::Result<Option<Duration>> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).to_string();
        let wait_ms: i64 = self
            .login_script
            .evalsha_with_reload(
                self.connected()?,
                vec![self.attempts_key(account)],
                vec![
                    now.timestamp_millis().to_string(),
                    backoff.free.to_string(),
                    ms(backoff.delays.base),
                    ms(backoff.delays.max),
                    ms(backoff.window),
                ],
            )
            .await
            .context("count login attempt")?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))))
    }

    async fn clear_login_attempts(&self, account: &str) -> anyhow::Result<()> {
        let _: i64 = self
            .connected()?
            .del(self.attempts_key(account))
            .await
            .context("clear login attempts")?;
        Ok(())
    }

    async fn count_in_window(
        &self,
        key: &str,
        _now: DateTime<Utc>,
        window: Duration,
    ) -> anyhow::Result<u64> {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let count: u64 = self
            .count_script
            .evalsha_with_reload(
                self.connected()?,
                vec![format!("{}count:{key}", self.prefix)],
                vec![window_ms.to_string()],
            )
            .await
            .context("count event")?;
        Ok(count)
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let _: String = self.connected()?.ping(None).await.context("ping Redis")?;
        Ok(())
    }
}

/// Applies what the channel carries to this instance's memory. The memory is trusted
/// while heartbeats arrive; after a gap (or lost messages) it is rebuilt from the keys
/// in Redis before it is trusted again.
async fn listen(
    subscriber: fred::clients::SubscriberClient,
    pool: Pool,
    local: Arc<LocalState>,
    prefix: String,
) {
    let mut messages = subscriber.message_rx();
    loop {
        let message = match messages.recv().await {
            Ok(message) => message,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "events were missed; rebuilding the local state");
                local.distrust();
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(text) = message.value.as_string() else {
            continue;
        };
        match Event::decode(&text) {
            Some(Event::Heartbeat) => {
                if local.is_trusted() {
                    local.heard_heartbeat();
                } else {
                    match read_revocations(&pool, &prefix).await {
                        Ok(revoked) => {
                            local.replace(revoked);
                            local.heard_heartbeat();
                        }
                        Err(error) => tracing::warn!(?error, "cannot rebuild the local state"),
                    }
                }
            }
            Some(Event::Revoked { until_ms, sessions }) => {
                local.revoke(&sessions, until_ms, Utc::now().timestamp_millis());
            }
            Some(Event::UserChanged(id)) => local.forget_user(id),
            None => tracing::warn!("unreadable event on the channel"),
        }
    }
}

/// Every revoked session still in Redis.
async fn read_revocations(
    pool: &Pool,
    prefix: &str,
) -> anyhow::Result<std::collections::HashMap<Uuid, i64>> {
    use futures::TryStreamExt;
    let key_prefix = format!("{prefix}revoked:sid:");
    let keys: Vec<fred::types::Key> = pool
        .next()
        .scan_buffered(format!("{key_prefix}*"), Some(1000), None)
        .try_collect()
        .await
        .context("scan revoked sessions")?;
    let mut revoked = std::collections::HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let values: Vec<Option<i64>> = pool
            .mget(chunk.to_vec())
            .await
            .context("read revoked sessions")?;
        for (key, until) in chunk.iter().zip(values) {
            let id = key
                .as_str()
                .and_then(|k| k.strip_prefix(key_prefix.as_str()))
                .and_then(|id| id.parse().ok());
            if let (Some(id), Some(until)) = (id, until) {
                revoked.insert(id, until);
            }
        }
    }
    Ok(revoked)
}

/// Says "alive" on the channel; every instance (this one included) trusts its memory
/// only while it hears such beats.
async fn beat(pool: Pool, channel: String) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        let sent: Result<i64, _> = pool
            .next()
            .publish(channel.clone(), Event::Heartbeat.encode())
            .await;
        if let Err(error) = sent {
            tracing::debug!(?error, "heartbeat not published");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_the_wire() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let revoked = Event::Revoked {
            until_ms: 42,
            sessions: vec![a, b],
        }
        .encode();
        match Event::decode(&revoked) {
            Some(Event::Revoked {
                until_ms: 42,
                sessions,
            }) => assert_eq!(sessions, [a, b]),
            _ => panic!("{revoked}"),
        }
        assert!(
            matches!(Event::decode(&Event::UserChanged(a).encode()), Some(Event::UserChanged(id)) if id == a)
        );
        assert!(matches!(Event::decode("h"), Some(Event::Heartbeat)));
        assert!(Event::decode("r:x:y").is_none() && Event::decode("zzz").is_none());
    }
}

use anyhow::Context;
use chrono::{DateTime, Utc};
use fred::{
    interfaces::{ClientLike, KeysInterface},
    prelude::{Builder, Pool, ReconnectPolicy},
    types::{Expiration, config::Config as FredConfig, scripts::Script},
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{TokenStore, decode_entry, encode_entry, ttl_from_now};
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

/// The Redis token store, through a `fred` connection pool. Every key starts with the
/// configured prefix, so deployments (and tests) can share a server.
pub struct RedisTokenStore {
    pool: Pool,
    prefix: String,
    put_script: Script,
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
        Ok(Self {
            pool,
            prefix: cfg.key_prefix.clone(),
            put_script: Script::from_lua(PUT_RESET_TOKEN),
        })
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
                self.pool.next(),
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
            .pool
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
            .pool
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
        let ttl = i64::try_from(ttl_from_now(until).as_millis()).unwrap_or(i64::MAX);
        for id in session_ids {
            let _: () = self
                .pool
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
        Ok(())
    }

    async fn is_session_revoked(
        &self,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let until: Option<i64> = self
            .pool
            .get(self.revoked_key(session_id))
            .await
            .context("check session revocation")?;
        Ok(until.is_some_and(|ms| ms > now.timestamp_millis()))
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let _: String = self.pool.ping(None).await.context("ping Redis")?;
        Ok(())
    }
}

//! Reset tokens in Redis: one key per token hash, one per user pointing at the
//! user's current token, both expiring with the token.

use anyhow::Context;
use chrono::{DateTime, Utc};
use fred::interfaces::KeysInterface;
use uuid::Uuid;

use super::RedisStore;
use crate::store::ephemeral::{ResetTokenStore, decode_entry, encode_entry, ttl_from_now};

/// Replaces a user's reset token atomically: the old token stops working at the same
/// moment the new one starts.
/// KEYS[1] user key, KEYS[2] new token key; ARGV[1] new token key, ARGV[2] entry,
/// ARGV[3] TTL in ms.
pub(super) const PUT_RESET_TOKEN: &str = r#"
local old = redis.call('GET', KEYS[1])
if old then redis.call('DEL', old) end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"#;

/// Cancels a user's reset token: the token's key and the user's pointer, at once.
/// KEYS[1] user key.
pub(super) const CANCEL_RESET_TOKENS: &str = r#"
local old = redis.call('GET', KEYS[1])
if old then redis.call('DEL', old) end
redis.call('DEL', KEYS[1])
return 1
"#;

#[async_trait::async_trait]
impl ResetTokenStore for RedisStore {
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

    async fn cancel_reset_tokens(&self, user_id: Uuid) -> anyhow::Result<()> {
        let _: i64 = self
            .cancel_script
            .evalsha_with_reload(
                self.connected()?,
                vec![self.reset_user_key(user_id)],
                Vec::<String>::new(),
            )
            .await
            .context("cancel reset tokens")?;
        Ok(())
    }
}

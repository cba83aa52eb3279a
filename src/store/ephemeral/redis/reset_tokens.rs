//! Reset tokens in Redis: one key per token hash (holding its user and expiry), and one
//! per user naming the user's current token, both expiring with the token.
//!
//! The two keys of a token cannot share a hash slot on a Redis Cluster (a token is
//! looked up by its hash alone, without its user), so no script touches both: the
//! user's key is the truth about which token is current. A token is honoured only if
//! its key exists *and* its user's key still names it; putting a new token writes its
//! key, then swaps the user's key (`SET … GET`: the moment the old token stops working
//! and the new one starts), then deletes the old token's key, which only cleans up.
//! A failure half-way leaves at worst a key that is never honoured and expires.

use anyhow::Context;
use chrono::{DateTime, Utc};
use fred::{
    interfaces::KeysInterface,
    types::{Expiration, SetOptions},
};
use uuid::Uuid;

use super::RedisStore;
use crate::store::ephemeral::{ResetTokenStore, decode_entry, encode_entry, ttl_from_now};

impl RedisStore {
    /// Whether `token_key` is still the user's current token.
    async fn is_current_reset_token(&self, user_id: Uuid, token_key: &str) -> anyhow::Result<bool> {
        let current: Option<String> = self
            .connected()?
            .get(self.reset_user_key(user_id))
            .await
            .context("read the user's current reset token")?;
        Ok(current.as_deref() == Some(token_key))
    }
}

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
        let client = self.connected()?;
        let _: () = client
            .set(
                token_key.as_str(),
                encode_entry(user_id, expires_at),
                Some(Expiration::PX(ttl)),
                None,
                false,
            )
            .await
            .context("store reset token")?;
        // The switch: from here the new token works and the previous one does not.
        let previous: Option<String> = client
            .set(
                self.reset_user_key(user_id),
                token_key.as_str(),
                Some(Expiration::PX(ttl)),
                None::<SetOptions>,
                true,
            )
            .await
            .context("make the reset token current")?;
        if let Some(previous) = previous.filter(|p| *p != token_key) {
            let _: i64 = client
                .del(previous)
                .await
                .context("delete the previous reset token")?;
        }
        Ok(())
    }

    async fn peek_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Uuid>> {
        let token_key = self.reset_key(token_hash);
        let entry: Option<String> = self
            .connected()?
            .get(token_key.as_str())
            .await
            .context("read reset token")?;
        let Some(user) = entry.and_then(|e| decode_entry(&e, now)) else {
            return Ok(None);
        };
        Ok(self
            .is_current_reset_token(user, &token_key)
            .await?
            .then_some(user))
    }

    async fn take_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Uuid>> {
        let token_key = self.reset_key(token_hash);
        // GETDEL is atomic: one caller gets the entry, the others nothing. The check
        // comes after it, so a token replaced meanwhile is refused, never honoured late.
        let entry: Option<String> = self
            .connected()?
            .getdel(token_key.as_str())
            .await
            .context("consume reset token")?;
        let Some(user) = entry.and_then(|e| decode_entry(&e, now)) else {
            return Ok(None);
        };
        Ok(self
            .is_current_reset_token(user, &token_key)
            .await?
            .then_some(user))
    }

    async fn cancel_reset_tokens(&self, user_id: Uuid) -> anyhow::Result<()> {
        // Deleting the user's key is the cancellation; the token's key only cleans up.
        let client = self.connected()?;
        let current: Option<String> = client
            .getdel(self.reset_user_key(user_id))
            .await
            .context("cancel reset tokens")?;
        if let Some(token_key) = current {
            let _: i64 = client
                .del(token_key)
                .await
                .context("delete the cancelled reset token")?;
        }
        Ok(())
    }
}

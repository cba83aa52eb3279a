//! Flow state in Redis: one key per flow, expiring with it; finishing a flow is GETDEL,
//! so exactly one instance can.

use anyhow::Context;
use chrono::{DateTime, Utc};
use fred::{interfaces::KeysInterface, types::Expiration};

use super::RedisStore;
use crate::store::ephemeral::{FlowStore, decode_flow, encode_flow, ttl_from_now};

#[async_trait::async_trait]
impl FlowStore for RedisStore {
    async fn put_flow(
        &self,
        key: &str,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let ttl = i64::try_from(ttl_from_now(expires_at).as_millis()).unwrap_or(i64::MAX);
        let _: () = self
            .connected()?
            .set(
                self.flow_key(key),
                encode_flow(value, expires_at),
                Some(Expiration::PX(ttl)),
                None,
                false,
            )
            .await
            .context("store flow state")?;
        Ok(())
    }

    async fn get_flow(&self, key: &str, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
        let stored: Option<String> = self
            .connected()?
            .get(self.flow_key(key))
            .await
            .context("read flow state")?;
        Ok(stored.and_then(|s| decode_flow(&s, now)))
    }

    async fn take_flow(&self, key: &str, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
        let stored: Option<String> = self
            .connected()?
            .getdel(self.flow_key(key))
            .await
            .context("take flow state")?;
        Ok(stored.and_then(|s| decode_flow(&s, now)))
    }
}

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{TokenStore, decode_entry, encode_entry};

/// The embedded token store: one process, entries expire by the clock they are given.
#[derive(Default)]
pub struct MemoryTokenStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// token hash → encoded entry
    reset_tokens: HashMap<String, (String, DateTime<Utc>)>,
    /// user → their current token hash
    reset_by_user: HashMap<Uuid, String>,
    /// session → revoked until
    revoked: HashMap<Uuid, DateTime<Utc>>,
    writes: u64,
}

impl Inner {
    /// Drops expired entries now and then, so the maps stay bounded.
    fn maybe_purge(&mut self, now: DateTime<Utc>) {
        self.writes += 1;
        if !self.writes.is_multiple_of(256) {
            return;
        }
        self.reset_tokens.retain(|_, (_, exp)| *exp > now);
        let live = &self.reset_tokens;
        self.reset_by_user.retain(|_, hash| live.contains_key(hash));
        self.revoked.retain(|_, until| *until > now);
    }
}

impl MemoryTokenStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps inconsistent in a way
        // that matters (each write is one insert or remove), so recover from poisoning.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl TokenStore for MemoryTokenStore {
    async fn put_reset_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut inner = self.lock();
        if let Some(old) = inner.reset_by_user.insert(user_id, token_hash.to_owned()) {
            inner.reset_tokens.remove(&old);
        }
        inner.reset_tokens.insert(
            token_hash.to_owned(),
            (encode_entry(user_id, expires_at), expires_at),
        );
        inner.maybe_purge(Utc::now());
        Ok(())
    }

    async fn peek_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Uuid>> {
        let inner = self.lock();
        Ok(inner
            .reset_tokens
            .get(token_hash)
            .and_then(|(entry, _)| decode_entry(entry, now)))
    }

    async fn take_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Uuid>> {
        let mut inner = self.lock();
        let Some((entry, _)) = inner.reset_tokens.remove(token_hash) else {
            return Ok(None);
        };
        let user = decode_entry(&entry, now);
        if let Some(user_id) = user
            && inner.reset_by_user.get(&user_id).map(String::as_str) == Some(token_hash)
        {
            inner.reset_by_user.remove(&user_id);
        }
        Ok(user)
    }

    async fn revoke_sessions(
        &self,
        session_ids: &[Uuid],
        until: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut inner = self.lock();
        for id in session_ids {
            inner.revoked.insert(*id, until);
        }
        inner.maybe_purge(Utc::now());
        Ok(())
    }

    async fn is_session_revoked(
        &self,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        Ok(self
            .lock()
            .revoked
            .get(&session_id)
            .is_some_and(|until| *until > now))
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

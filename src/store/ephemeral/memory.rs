use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Backoff, CounterStore, FlowStore, LocalMirror, LoginKeys, LoginLimits, Reachable,
    ResetTokenStore, RevocationStore, decode_entry, decode_flow, encode_entry, encode_flow,
};

/// The embedded backend of the three stores: one process, entries expire by the clock they are given.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Revocations and profiles: complete, since this process is the only instance.
    local: LocalMirror,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            local: LocalMirror::authoritative(),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// token hash → encoded entry
    reset_tokens: HashMap<String, (String, DateTime<Utc>)>,
    /// user → their current token hash
    reset_by_user: HashMap<Uuid, String>,
    /// account, or (account, client) → login attempts
    attempts: HashMap<String, Attempts>,
    /// (account, client) marker → until when the client is known to the account
    known: HashMap<String, DateTime<Utc>>,
    /// key → (count, end of window)
    counters: HashMap<String, (u64, DateTime<Utc>)>,
    /// key → (encoded value, expiry)
    flows: HashMap<String, (String, DateTime<Utc>)>,
    writes: u64,
}

struct Attempts {
    count: u64,
    until: DateTime<Utc>,
    expires: DateTime<Utc>,
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
        self.attempts.retain(|_, a| a.expires > now);
        self.known.retain(|_, until| *until > now);
        self.counters.retain(|_, (_, end)| *end > now);
        self.flows.retain(|_, (_, end)| *end > now);
    }
}

impl Inner {
    /// How long attempts under `key` must still wait, if they must.
    fn wait(&self, key: &str, now: DateTime<Utc>) -> Option<chrono::Duration> {
        let entry = self.attempts.get(key)?;
        (entry.expires > now && entry.until > now).then(|| entry.until - now)
    }

    /// Counts one attempt under `key`; the attempt that uses the last free one, and
    /// every one after, starts a cool-down.
    fn count(&mut self, key: &str, now: DateTime<Utc>, backoff: &Backoff) -> anyhow::Result<()> {
        let window = chrono::Duration::from_std(backoff.window)?;
        let entry = self.attempts.entry(key.to_owned()).or_insert(Attempts {
            count: 0,
            until: now,
            expires: now + window,
        });
        if entry.expires <= now {
            entry.count = 0;
            entry.until = now;
        }
        entry.count += 1;
        entry.expires = now + window;
        if let Some(delay) = backoff.delay_after(entry.count) {
            entry.until = now + chrono::Duration::from_std(delay)?;
        }
        Ok(())
    }
}

impl MemoryStore {
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
impl ResetTokenStore for MemoryStore {
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
        inner.maybe_purge(crate::clock::wall_now());
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

    async fn cancel_reset_tokens(&self, user_id: Uuid) -> anyhow::Result<()> {
        let mut inner = self.lock();
        if let Some(token_hash) = inner.reset_by_user.remove(&user_id) {
            inner.reset_tokens.remove(&token_hash);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl RevocationStore for MemoryStore {
    async fn revoke_sessions(
        &self,
        session_ids: &[Uuid],
        until: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.local.revoke(
            session_ids,
            until.timestamp_millis(),
            crate::clock::wall_now().timestamp_millis(),
        );
        Ok(())
    }

    async fn is_session_revoked(
        &self,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<bool>> {
        Ok(Some(
            self.local.is_revoked(session_id, now.timestamp_millis()),
        ))
    }

    fn mirror(&self) -> &LocalMirror {
        &self.local
    }

    async fn user_changed(&self, id: Uuid) -> anyhow::Result<()> {
        self.local.forget_user(id);
        Ok(())
    }

    async fn user_signed_in(&self, id: Uuid, at: DateTime<Utc>) -> anyhow::Result<()> {
        self.local.signed_in(id, at.timestamp_micros());
        Ok(())
    }
}

#[async_trait::async_trait]
impl CounterStore for MemoryStore {
    async fn begin_login_attempt(
        &self,
        keys: &LoginKeys,
        now: DateTime<Utc>,
        limits: &LoginLimits,
    ) -> anyhow::Result<Option<Duration>> {
        let mut inner = self.lock();
        inner.maybe_purge(now);
        let known = inner
            .known
            .get(&keys.known)
            .is_some_and(|until| *until > now);
        let wait = match inner.wait(&keys.client, now) {
            None if !known => inner.wait(&keys.account, now),
            wait => wait,
        };
        if let Some(wait) = wait {
            return Ok(Some(wait.to_std()?));
        }
        inner.count(&keys.client, now, &limits.client)?;
        inner.count(&keys.account, now, &limits.account)?;
        Ok(None)
    }

    async fn login_succeeded(
        &self,
        keys: &LoginKeys,
        now: DateTime<Utc>,
        known_for: Duration,
    ) -> anyhow::Result<()> {
        let mut inner = self.lock();
        inner.attempts.remove(&keys.client);
        if let Some(account) = inner.attempts.get_mut(&keys.account) {
            account.count = account.count.saturating_sub(1);
        }
        let until = now + chrono::Duration::from_std(known_for)?;
        inner.known.insert(keys.known.clone(), until);
        Ok(())
    }

    async fn clear_login_attempts(&self, keys: &LoginKeys) -> anyhow::Result<()> {
        let mut inner = self.lock();
        inner.attempts.remove(&keys.client);
        inner.attempts.remove(&keys.account);
        Ok(())
    }

    async fn count_in_window(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> anyhow::Result<u64> {
        let mut inner = self.lock();
        inner.maybe_purge(now);
        let end = now + chrono::Duration::from_std(window)?;
        let entry = inner.counters.entry(key.to_owned()).or_insert((0, end));
        if entry.1 <= now {
            *entry = (0, end);
        }
        entry.0 += 1;
        Ok(entry.0)
    }
}

#[async_trait::async_trait]
impl FlowStore for MemoryStore {
    async fn put_flow(
        &self,
        key: &str,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut inner = self.lock();
        inner.maybe_purge(crate::clock::wall_now());
        let stored = encode_flow(value, expires_at);
        inner.flows.insert(key.to_owned(), (stored, expires_at));
        Ok(())
    }

    async fn get_flow(&self, key: &str, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
        let inner = self.lock();
        Ok(inner
            .flows
            .get(key)
            .and_then(|(stored, _)| decode_flow(stored, now)))
    }

    async fn take_flow(&self, key: &str, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
        let mut inner = self.lock();
        Ok(inner
            .flows
            .remove(key)
            .and_then(|(stored, _)| decode_flow(&stored, now)))
    }
}

#[async_trait::async_trait]
impl Reachable for MemoryStore {
    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

//! Revocations and profile changes in Redis: a key per revoked session, and the
//! events channel that keeps every instance's [`LocalMirror`] current, with heartbeats
//! that tell an instance when it may trust its mirror.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use fred::{
    interfaces::{EventInterface, KeysInterface, PubsubInterface},
    prelude::Pool,
    types::Expiration,
};
use uuid::Uuid;

use super::RedisStore;
use crate::store::ephemeral::{LocalMirror, RevocationStore, ttl_from_now};

/// How often each instance says it is alive on the channel.
pub(super) const HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(250);

/// A message on the channel.
pub(super) enum Event {
    Heartbeat,
    Revoked { until_ms: i64, sessions: Vec<Uuid> },
    UserChanged(Uuid),
}

impl Event {
    pub(super) fn encode(&self) -> String {
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

#[async_trait::async_trait]
impl RevocationStore for RedisStore {
    async fn revoke_sessions(
        &self,
        session_ids: &[Uuid],
        until: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        // This instance knows at once, whatever happens to the rest.
        self.local.revoke(
            session_ids,
            until.timestamp_millis(),
            crate::clock::wall_now().timestamp_millis(),
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

    fn mirror(&self) -> &LocalMirror {
        &self.local
    }

    async fn user_changed(&self, id: Uuid) -> anyhow::Result<()> {
        self.local.forget_user(id);
        self.publish(Event::UserChanged(id)).await
    }
}

/// Applies what the channel carries to this instance's memory. The memory is trusted
/// while heartbeats arrive; after a gap (or lost messages) it is rebuilt from the keys
/// in Redis before it is trusted again.
pub(super) async fn listen(
    subscriber: fred::clients::SubscriberClient,
    pool: Pool,
    local: Arc<LocalMirror>,
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
                local.revoke(
                    &sessions,
                    until_ms,
                    crate::clock::wall_now().timestamp_millis(),
                );
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
pub(super) async fn beat(pool: Pool, channel: String) {
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

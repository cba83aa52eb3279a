//! Revocations and profile changes in Redis: a key per revoked session, and the
//! events channel that keeps every instance's [`LocalMirror`] current, with heartbeats
//! that tell an instance when it may trust its mirror.
//!
//! Redis is not the truth: it can restart empty, be flushed, evict keys, or drop
//! pub/sub messages. So every event carries its publisher's name and a sequence number,
//! and each heartbeat the number of events its publisher had sent a beat earlier; a
//! listener that misses one, or whose subscription reconnects, distrusts its memory.
//! Before trusting it again it rebuilds from the database (the sessions revoked
//! within an access token's lifetime) and Redis together, only ever adding to what it
//! knew, and writes back to Redis whatever Redis lost.

use std::{collections::HashMap, future::Future, sync::Arc};

use anyhow::Context;
use chrono::{DateTime, Utc};
use fred::{
    interfaces::{ClientLike, EventInterface, KeysInterface},
    prelude::Pool,
    types::{Expiration, SetOptions},
};
use uuid::Uuid;

use super::{
    Channel, RedisStore,
    events::{Event, Publishers, Sequence},
};
use crate::store::ephemeral::{LocalMirror, RevocationSource, RevocationStore};

/// How often each instance says it is alive on the channel.
pub(super) const HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(250);
/// Revocation keys written per round trip (one pipeline).
const WRITE_CHUNK: usize = 500;
/// Sessions named per event: a reset of an account with tens of thousands of sessions
/// is announced in messages of a few tens of kilobytes, not one of megabytes.
const PUBLISH_CHUNK: usize = 1_000;

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
        let until_ms = until.timestamp_millis();
        let entries: Vec<(Uuid, i64)> = session_ids.iter().map(|id| (*id, until_ms)).collect();
        let stored = match self.connected() {
            Ok(_) => write_revocations(&self.pool, &self.prefix, &entries, false).await,
            Err(error) => Err(error),
        };
        if stored.is_err() {
            // Written back from memory and the database when Redis answers again.
            self.local.distrust();
        }
        // Stored first, then announced: an instance that hears it, or that reads the
        // keys after a gap, sees the same thing. Announced even if not stored: the
        // other instances' memories matter most.
        let mut announced = Ok(());
        for chunk in session_ids.chunks(PUBLISH_CHUNK) {
            let sent = self
                .publish(|publisher, seq| Event::Revoked {
                    publisher,
                    seq,
                    until_ms,
                    sessions: chunk.to_vec(),
                })
                .await;
            announced = announced.and(sent);
        }
        stored.and(announced)
    }

    async fn is_session_revoked(
        &self,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<bool>> {
        let now_ms = now.timestamp_millis();
        if self.local.is_trusted() {
            return Ok(Some(self.local.is_revoked(session_id, now_ms)));
        }
        // Memory never forgets, so a hit there is certain; a miss is not.
        if self.local.is_revoked(session_id, now_ms) {
            return Ok(Some(true));
        }
        let until: Option<i64> = self
            .connected()?
            .get(self.revoked_key(session_id))
            .await
            .context("check session revocation")?;
        // No key is no proof: Redis may have restarted, been flushed or evicted it.
        Ok(until.is_some_and(|ms| ms > now_ms).then_some(true))
    }

    fn mirror(&self) -> &LocalMirror {
        &self.local
    }

    async fn user_changed(&self, id: Uuid) -> anyhow::Result<()> {
        self.local.forget_user(id);
        self.publish(|publisher, seq| Event::UserChanged {
            publisher,
            seq,
            user: id,
        })
        .await
    }

    async fn user_signed_in(&self, id: Uuid, at: DateTime<Utc>) -> anyhow::Result<()> {
        let at_us = at.timestamp_micros();
        self.local.signed_in(id, at_us);
        self.publish(|publisher, seq| Event::SignedIn {
            publisher,
            seq,
            user: id,
            at_us,
        })
        .await
    }
}

/// Applies what the channel carries to this instance's memory. The memory is trusted
/// while heartbeats arrive and no event is missing; after a gap it is rebuilt (see the
/// module) before it is trusted again. Heartbeats that only came late (a lapse, with
/// every event accounted for) need no rebuild. A rebuild runs beside the listening:
/// events keep being applied while it reads, so it cannot make the listener fall
/// behind and lose messages, which would only call for another.
pub(super) async fn listen(
    subscriber: fred::clients::SubscriberClient,
    pool: Pool,
    local: Arc<LocalMirror>,
    prefix: String,
    source: RevocationSource,
    sequence: Arc<super::events::Sequence>,
) {
    let mut messages = subscriber.message_rx();
    let mut reconnects = Some(subscriber.reconnect_rx());
    let mut publishers = Publishers::default();
    let mut rebuilding: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>> = None;
    loop {
        let reconnected = async {
            match reconnects.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let rebuilt = async {
            match rebuilding.as_mut() {
                Some(rebuild) => rebuild.await,
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            message = messages.recv() => message,
            () = rebuilt => {
                rebuilding = None;
                continue;
            }
            reconnect = reconnected => {
                match reconnect {
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => reconnects = None,
                    _ => {
                        // Whatever was published while it was away is lost.
                        tracing::warn!("the events subscription reconnected; rebuilding the local state");
                        local.distrust();
                    }
                }
                continue;
            }
        };
        let message = match message {
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
            Some(Event::Heartbeat { publisher, settled }) => {
                if !publishers.heartbeat(publisher, settled) {
                    tracing::warn!(%publisher, "events were lost; rebuilding the local state");
                    local.distrust();
                }
                if !local.needs_rebuild() {
                    local.heard_heartbeat();
                } else if rebuilding.is_none() {
                    rebuilding = Some(Box::pin(rebuild(&pool, &prefix, &source, &local)));
                }
            }
            Some(Event::Revoked {
                publisher,
                seq,
                until_ms,
                sessions,
            }) => {
                local.revoke(
                    &sessions,
                    until_ms,
                    crate::clock::wall_now().timestamp_millis(),
                );
                heard(&mut publishers, &local, &sequence, publisher, seq);
            }
            Some(Event::UserChanged {
                publisher,
                seq,
                user,
            }) => {
                local.forget_user(user);
                heard(&mut publishers, &local, &sequence, publisher, seq);
            }
            Some(Event::SignedIn {
                publisher,
                seq,
                user,
                at_us,
            }) => {
                local.signed_in(user, at_us);
                heard(&mut publishers, &local, &sequence, publisher, seq);
            }
            Some(Event::Unknown {
                publisher,
                seq,
                ignorable,
            }) => {
                if !ignorable {
                    tracing::warn!(
                        %publisher,
                        "an event of a kind this build does not know; rebuilding the local state"
                    );
                    local.distrust();
                }
                heard(&mut publishers, &local, &sequence, publisher, seq);
            }
            None => tracing::warn!("unreadable event on the channel"),
        }
    }
}

/// An event numbered `seq` by `publisher` was applied: counted, the memory distrusted if
/// too many before it are missing, and this instance's own echo noted.
fn heard(
    publishers: &mut Publishers,
    local: &LocalMirror,
    sequence: &Sequence,
    publisher: Uuid,
    seq: u64,
) {
    if !publishers.event(publisher, seq) {
        local.distrust();
    }
    if publisher == sequence.publisher() {
        sequence.heard_own(seq);
    }
}

/// One rebuild, counted and timed; the memory is trusted again if nothing was missed
/// since it began (otherwise the next heartbeat begins another).
async fn rebuild(pool: &Pool, prefix: &str, source: &RevocationSource, local: &LocalMirror) {
    let mark = local.rebuild_started();
    let started = std::time::Instant::now();
    let read = read_back(pool, prefix, source, local).await;
    let took = started.elapsed();
    let result = if read.is_ok() { "ok" } else { "failed" };
    source
        .metrics
        .counter("identity_revocation_rebuilds_total", &[("result", result)])
        .increment(1);
    source
        .metrics
        .histogram("identity_revocation_rebuild_duration_seconds", &[])
        .record(took.as_secs_f64());
    match read {
        Ok(revocations) => {
            let trusted = local.rebuilt(mark);
            tracing::info!(
                revocations,
                took_ms = took.as_millis(),
                trusted,
                "local state rebuilt from the database and Redis"
            );
        }
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot rebuild the local state");
        }
    }
}

/// Adds to memory every revocation the database and Redis hold (never dropping what it
/// knew), then writes back to Redis those it lacks: lost in a restart, a `FLUSHALL` or
/// an eviction, or made while it was down. Returns how many are live.
async fn read_back(
    pool: &Pool,
    prefix: &str,
    source: &RevocationSource,
    local: &LocalMirror,
) -> anyhow::Result<usize> {
    let stored = source
        .load()
        .await
        .context("read revoked sessions from the database")?;
    let in_redis = read_revocations(pool, prefix).await?;
    local.merge(&stored);
    local.merge(&in_redis);
    let now_ms = crate::clock::wall_now().timestamp_millis();
    let live = local.revoked_since(now_ms);
    let lost: Vec<(Uuid, i64)> = live
        .iter()
        .filter(|(id, _)| !in_redis.contains_key(id))
        .map(|(id, until)| (*id, *until))
        .collect();
    if !lost.is_empty() {
        tracing::info!(count = lost.len(), "writing back revocations Redis lacked");
    }
    write_revocations(pool, prefix, &lost, true).await?;
    Ok(live.len())
}

/// Marks sessions revoked until the given times (ms), a pipeline per `WRITE_CHUNK`
/// keys; with `only_missing`, keys already there are left as they are.
async fn write_revocations(
    pool: &Pool,
    prefix: &str,
    entries: &[(Uuid, i64)],
    only_missing: bool,
) -> anyhow::Result<()> {
    let now_ms = crate::clock::wall_now().timestamp_millis();
    let options = only_missing.then_some(SetOptions::NX);
    for chunk in entries.chunks(WRITE_CHUNK) {
        let pipeline = pool.next_connected().pipeline();
        for (id, until) in chunk {
            let _: () = pipeline
                .set(
                    format!("{prefix}revoked:sid:{id}"),
                    *until,
                    Some(Expiration::PX((until - now_ms).max(1))),
                    options.clone(),
                    false,
                )
                .await
                .context("queue a revocation")?;
        }
        let _: Vec<fred::types::Value> = pipeline.all().await.context("mark sessions revoked")?;
    }
    Ok(())
}

/// Every revoked session still in Redis. On a Redis Cluster the keys are spread over
/// the primaries by hash slot, so the scan runs on every primary (`SCAN` on one node
/// sees only that node's keys); the values are read with pipelined `GET`s, which the
/// client routes node by node (an `MGET` across slots is refused by a cluster).
async fn read_revocations(pool: &Pool, prefix: &str) -> anyhow::Result<HashMap<Uuid, i64>> {
    use futures::TryStreamExt;
    let key_prefix = format!("{prefix}revoked:sid:");
    let client = pool.next_connected();
    let pattern = format!("{key_prefix}*");
    let keys: Vec<fred::types::Key> = if client.is_clustered() {
        client
            .scan_cluster_buffered(pattern, Some(1000), None)
            .try_collect()
            .await
    } else {
        client
            .scan_buffered(pattern, Some(1000), None)
            .try_collect()
            .await
    }
    .context("scan revoked sessions")?;
    let mut revoked = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(WRITE_CHUNK) {
        let pipeline = pool.next_connected().pipeline();
        for key in chunk {
            let _: () = pipeline
                .get(key.clone())
                .await
                .context("queue a revoked session")?;
        }
        let values: Vec<fred::types::Value> =
            pipeline.all().await.context("read revoked sessions")?;
        for (key, until) in chunk.iter().zip(values) {
            let until: Option<i64> = until.convert().ok().flatten();
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

/// Says "alive" on the channel, with how many events this instance had numbered one
/// beat ago; every instance (this one included) trusts its memory only while it hears
/// such beats and has heard every event they account for.
pub(super) async fn beat(pool: Pool, channel: Channel, sequence: Arc<Sequence>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut settled = 0;
    loop {
        tick.tick().await;
        let numbered = sequence.numbered();
        let beat = Event::Heartbeat {
            publisher: sequence.publisher(),
            settled,
        };
        let sent = channel.publish(pool.next_connected(), beat.encode()).await;
        if let Err(error) = sent {
            tracing::debug!(error = %format!("{error:#}"), "heartbeat not published");
        }
        settled = numbered;
    }
}

//! Per-client-IP budgets: with Redis, one budget per client shared by every instance;
//! without it, or while Redis cannot be reached, each instance limits in process
//! (`security::per_ip_limits`, governor). Both are GCRA with the same quotas: a burst
//! of `n`, replenished evenly over the minute.
//!
//! With Redis, the requests of one client that reach an instance while its call for
//! that client is on the way wait for it to return and then go together, counted by
//! one script: each still gets its own answer, in arrival order, from the budget as
//! it is after it arrived; a busy client costs a round trip per round, not per request.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::{
    clock::Clock,
    config::RateLimitConfig,
    domain::client::ClientKey,
    metrics::Metrics,
    security::per_ip_limits::{IpLimit, PerIpLimits},
    store::ephemeral::{IpBucket, IpLimitStore},
};

/// How often, at most, an outage of the shared store is logged (every check that falls
/// back is counted in `identity_rate_limit_fallback_total`).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The per-IP budgets of an instance: shared ones on Redis, its own otherwise.
pub struct IpLimits {
    shared: Option<Arc<Rounds>>,
    local: PerIpLimits,
    cfg: RateLimitConfig,
    metrics: Metrics,
    last_warning: Mutex<Option<Instant>>,
}

impl IpLimits {
    pub fn new(
        shared: Option<Arc<dyn IpLimitStore>>,
        cfg: &RateLimitConfig,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Self {
        Self {
            shared: shared.map(|store| {
                Arc::new(Rounds {
                    store,
                    clock,
                    metrics: metrics.clone(),
                    waiting: Mutex::default(),
                })
            }),
            local: PerIpLimits::new(cfg),
            cfg: cfg.clone(),
            metrics,
            last_warning: Mutex::new(None),
        }
    }

    /// Counts one request of every class in `classes` from `client`; the class that
    /// refuses it and the wait, if any. On Redis one script does it all, or nothing;
    /// if Redis fails, this instance's own budgets decide.
    pub async fn check(
        &self,
        client: ClientKey,
        classes: &[IpLimit],
    ) -> Option<(IpLimit, Duration)> {
        let Some(shared) = &self.shared else {
            return self.check_locally(client, classes);
        };
        let answer = Arc::clone(shared)
            .take(client, classes, || buckets(&self.cfg, client, classes))
            .await;
        match answer {
            Ok(refused) => refused.and_then(|(i, wait)| Some((*classes.get(i)?, wait))),
            Err(error) => {
                self.metrics.rate_limit_fallback("ip");
                if self.time_to_warn() {
                    tracing::warn!(error = %error, "per-IP limit store unreachable; limiting in process");
                }
                self.check_locally(client, classes)
            }
        }
    }

    /// This instance's budgets (governor): the only ones without Redis, the fallback
    /// while it cannot be reached. The first class that refuses stops the count.
    fn check_locally(&self, client: ClientKey, classes: &[IpLimit]) -> Option<(IpLimit, Duration)> {
        classes
            .iter()
            .map(|&c| (c, self.local.check(client, c)))
            .find_map(|(c, result)| result.err().map(|wait| (c, wait)))
    }

    fn time_to_warn(&self) -> bool {
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Forgets clients whose in-process budget is full again; call periodically.
    pub fn retain_recent(&self) {
        self.local.retain_recent();
    }
}

/// One answer of the shared store to one request: refused by the bucket at an index,
/// for a wait, or let through; or why the store could not answer.
type Answer = Result<Option<(usize, Duration)>, Arc<str>>;

/// The requests a client's round has not taken yet, by client and classes.
type Waiting = HashMap<(ClientKey, Vec<IpLimit>), Vec<oneshot::Sender<Answer>>>;

/// The shared budgets' calls, one at a time per client and classes: while a call is on
/// the way, that client's requests wait here and the next call counts them together.
struct Rounds {
    store: Arc<dyn IpLimitStore>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    /// An entry exists while its rounds run; they end when one finds it empty.
    waiting: Mutex<Waiting>,
}

impl Rounds {
    /// One request's answer; `buckets` names them for the call, if this request is
    /// the one that starts the client's rounds.
    async fn take(
        self: Arc<Self>,
        client: ClientKey,
        classes: &[IpLimit],
        buckets: impl FnOnce() -> Vec<IpBucket>,
    ) -> Answer {
        let (answer, answered) = oneshot::channel();
        // The key is kept for the rounds only by the request that starts them.
        let first = match self.lock().entry((client, classes.to_vec())) {
            Entry::Occupied(mut waiting) => {
                waiting.get_mut().push(answer);
                None
            }
            Entry::Vacant(slot) => {
                let key = slot.key().clone();
                slot.insert(vec![answer]);
                Some(key)
            }
        };
        if let Some(key) = first {
            tokio::spawn(self.run(key, buckets()));
        }
        // No answer at all: the rounds ended early (the runtime shutting down).
        answered
            .await
            .unwrap_or_else(|_| Err(Arc::from("the per-IP rounds ended")))
    }

    /// Calls the store for whatever waits under `key`, round after round, until a
    /// round finds nothing waiting.
    async fn run(self: Arc<Self>, key: (ClientKey, Vec<IpLimit>), buckets: Vec<IpBucket>) {
        let mut ending = EndRounds {
            rounds: &self,
            key: Some(&key),
        };
        loop {
            let round = {
                let mut waiting = self.lock();
                match waiting.get_mut(&key).map(std::mem::take) {
                    Some(round) if !round.is_empty() => round,
                    _ => {
                        waiting.remove(&key);
                        ending.key = None;
                        return;
                    }
                }
            };
            self.metrics.rate_limit_round_trip("ip");
            let requests = u32::try_from(round.len()).unwrap_or(u32::MAX);
            match self
                .store
                .take_ip_budget(&buckets, requests, self.clock.now())
                .await
            {
                Ok(budget) => {
                    let allowed = usize::try_from(budget.allowed).unwrap_or(usize::MAX);
                    for (i, answer) in round.into_iter().enumerate() {
                        // The requester may have gone; its count stands.
                        let _ = answer.send(Ok(budget.refused_by.filter(|_| i >= allowed)));
                    }
                }
                Err(error) => {
                    let error: Arc<str> = Arc::from(format!("{error:#}"));
                    for answer in round {
                        let _ = answer.send(Err(Arc::clone(&error)));
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes a client's entry if its rounds end without finding it empty (cancelled at
/// shutdown, or a panic): whoever still waits there is answered "unreachable" (the
/// senders drop) and the next request starts afresh.
struct EndRounds<'a> {
    rounds: &'a Rounds,
    key: Option<&'a (ClientKey, Vec<IpLimit>)>,
}

impl Drop for EndRounds<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.rounds.lock().remove(key);
        }
    }
}

/// The per-minute quota of a class.
fn per_minute(cfg: &RateLimitConfig, class: IpLimit) -> u32 {
    match class {
        IpLimit::Mutation => cfg.ip_per_minute,
        IpLimit::ResetRequest => cfg.reset_per_ip_per_minute,
        IpLimit::ResetToken => cfg.reset_token_per_ip_per_minute,
    }
    .max(1)
}

fn name(class: IpLimit) -> &'static str {
    match class {
        IpLimit::Mutation => "mutation",
        IpLimit::ResetRequest => "reset_request",
        IpLimit::ResetToken => "reset_token",
    }
}

/// The shared buckets of one request from `client`, one per class. The client (an
/// IPv4 address or an IPv6 prefix) is named by a hash, in braces: every class of a
/// client shares one Redis Cluster slot, and no address is stored in clear.
fn buckets(cfg: &RateLimitConfig, client: ClientKey, classes: &[IpLimit]) -> Vec<IpBucket> {
    let client = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("ip:{client}").as_bytes()));
    classes
        .iter()
        .map(|&class| {
            let n = per_minute(cfg, class);
            IpBucket {
                key: format!("ip:{{{client}}}:{}", name(class)),
                interval: Duration::from_secs(60) / n,
                burst: n,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_the_client_and_share_a_slot() {
        let cfg = RateLimitConfig {
            ip_per_minute: 3,
            reset_per_ip_per_minute: 0,
            reset_token_per_ip_per_minute: 1,
            login_failures: 5,
            login_base_delay: Duration::from_secs(2),
            login_max_delay: Duration::from_secs(900),
            login_window: Duration::from_secs(3600),
            login_account_failures: 100,
            login_known_client_ttl: Duration::from_secs(3600),
            ipv6_prefix: 64,
            ip_shared: true,
            reset_per_account: 3,
            reset_account_window: Duration::from_secs(3600),
        };
        let client = ClientKey::new([10, 0, 0, 1].into(), 64);
        let b = buckets(&cfg, client, &[IpLimit::Mutation, IpLimit::ResetRequest]);
        assert_eq!(b.len(), 2);
        assert!(!b[0].key.contains("10.0.0.1"));
        let tag = |k: &str| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_owned();
        assert_eq!(tag(&b[0].key), tag(&b[1].key));
        assert!(b[0].key.ends_with(":mutation"));
        assert_eq!((b[0].burst, b[0].interval), (3, Duration::from_secs(20)));
        assert_eq!((b[1].burst, b[1].interval), (1, Duration::from_secs(60)));
    }
}

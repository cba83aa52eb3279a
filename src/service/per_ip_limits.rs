//! Per-client-IP budgets: with Redis, one budget per client shared by every instance
//! (one script per request); without it, or while Redis cannot be reached, each
//! instance limits in process (`security::per_ip_limits`, governor). Both are GCRA
//! with the same quotas: a burst of `n`, replenished evenly over the minute.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

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
    shared: Option<Arc<dyn IpLimitStore>>,
    local: PerIpLimits,
    cfg: RateLimitConfig,
    clock: Arc<dyn Clock>,
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
            shared,
            local: PerIpLimits::new(cfg),
            cfg: cfg.clone(),
            clock,
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
        let buckets = buckets(&self.cfg, client, classes);
        match shared.take_ip_budget(&buckets, self.clock.now()).await {
            Ok(refused) => refused.and_then(|(i, wait)| Some((*classes.get(i)?, wait))),
            Err(error) => {
                self.metrics.rate_limit_fallback("ip");
                if self.time_to_warn() {
                    tracing::warn!(
                        error = %format!("{error:#}"),
                        "per-IP limit store unreachable; limiting in process"
                    );
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

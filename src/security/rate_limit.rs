//! Per-client-IP limits on mutations (`governor`, GCRA): a burst of a minute's quota,
//! replenished evenly over the minute.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::config::RateLimitConfig;

pub struct RateLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(cfg: &RateLimitConfig) -> Self {
        let per_minute = NonZeroU32::new(cfg.ip_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            per_ip: RateLimiter::keyed(Quota::per_minute(per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one mutation from `ip`; `Err(wait)` when over the limit.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        self.per_ip
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets clients whose budget is full again; call periodically to bound memory.
    pub fn retain_recent(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_ip_separately() {
        let limits = RateLimits::new(&RateLimitConfig { ip_per_minute: 3 });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..3 {
            assert!(limits.check_ip(a).is_ok());
        }
        let wait = limits.check_ip(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20));
        assert!(limits.check_ip(b).is_ok());
    }
}

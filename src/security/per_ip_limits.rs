//! Per-client-IP limits (`governor`, GCRA): each class allows a burst of its
//! per-minute quota, replenished evenly over the minute. In process: an instance
//! limits what reaches it.

use std::{num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::{config::RateLimitConfig, domain::client::ClientKey};

/// What a request is counted as, besides being a mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpLimit {
    /// Every mutation.
    Mutation,
    /// `requestPasswordReset`: each one may send a mail.
    ResetRequest,
    /// `resetPassword`: each one is a guess at a token.
    ResetToken,
}

impl IpLimit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mutation => "ip_mutation",
            Self::ResetRequest => "ip_reset_request",
            Self::ResetToken => "ip_reset_token",
        }
    }
}

pub struct PerIpLimits {
    mutation: DefaultKeyedRateLimiter<ClientKey>,
    reset_request: DefaultKeyedRateLimiter<ClientKey>,
    reset_token: DefaultKeyedRateLimiter<ClientKey>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> DefaultKeyedRateLimiter<ClientKey> {
    RateLimiter::keyed(Quota::per_minute(
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN),
    ))
}

impl PerIpLimits {
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self {
            mutation: per_minute(cfg.ip_per_minute),
            reset_request: per_minute(cfg.reset_per_ip_per_minute),
            reset_token: per_minute(cfg.reset_token_per_ip_per_minute),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of `class` from `client`; `Err(wait)` when over the limit.
    pub fn check(&self, client: ClientKey, class: IpLimit) -> Result<(), Duration> {
        let limiter = match class {
            IpLimit::Mutation => &self.mutation,
            IpLimit::ResetRequest => &self.reset_request,
            IpLimit::ResetToken => &self.reset_token,
        };
        limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets clients whose budget is full again; call periodically to bound memory.
    pub fn retain_recent(&self) {
        for limiter in [&self.mutation, &self.reset_request, &self.reset_token] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(per_minute: u32) -> RateLimitConfig {
        RateLimitConfig {
            ip_per_minute: per_minute,
            reset_per_ip_per_minute: 1,
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
        }
    }

    #[test]
    fn limits_each_ip_and_class_separately() {
        let limits = PerIpLimits::new(&cfg(3));
        let a = ClientKey::new([10, 0, 0, 1].into(), 64);
        let b = ClientKey::new([10, 0, 0, 2].into(), 64);
        for _ in 0..3 {
            assert!(limits.check(a, IpLimit::Mutation).is_ok());
        }
        let wait = limits.check(a, IpLimit::Mutation).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20));
        assert!(limits.check(b, IpLimit::Mutation).is_ok());
        assert!(limits.check(a, IpLimit::ResetToken).is_ok());
        assert!(limits.check(a, IpLimit::ResetToken).is_err());
    }
}

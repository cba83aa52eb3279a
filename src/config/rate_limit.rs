//! Abuse limits: per client IP, per account for logins and reset mails.

use std::time::Duration;

use super::{
    ConfigError,
    vars::{DAY, Described, Vars, secs},
};

/// The largest count any limit accepts: far beyond what a limit is for, so a benchmark
/// or a fuzzer can switch limits off in effect (they set 1,000,000,000), while a value
/// that would overflow is still refused.
const RATE_MAX: u32 = 1_000_000_000;

pub(super) const VARS: &[&str] = &[
    "RATE_LIMIT_IP_PER_MINUTE",
    "RATE_LIMIT_RESET_PER_IP_PER_MINUTE",
    "RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE",
    "RATE_LIMIT_LOGIN_FAILURES",
    "RATE_LIMIT_LOGIN_BASE_DELAY",
    "RATE_LIMIT_LOGIN_MAX_DELAY",
    "RATE_LIMIT_LOGIN_WINDOW",
    "RATE_LIMIT_LOGIN_ACCOUNT_FAILURES",
    "RATE_LIMIT_LOGIN_KNOWN_CLIENT_TTL",
    "RATE_LIMIT_IPV6_PREFIX",
    "RATE_LIMIT_IP_SHARED",
    "RATE_LIMIT_RESET_PER_ACCOUNT",
    "RATE_LIMIT_RESET_ACCOUNT_WINDOW",
];

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Mutations per minute from one client IP.
    pub ip_per_minute: u32,
    /// `requestPasswordReset` per minute from one client IP.
    pub reset_per_ip_per_minute: u32,
    /// `resetPassword` (token guesses) per minute from one client IP.
    pub reset_token_per_ip_per_minute: u32,
    /// Failed logins of one account from one client before each further attempt from
    /// that client waits.
    pub login_failures: u32,
    /// The first wait; each further failure doubles it, up to `login_max_delay`.
    pub login_base_delay: Duration,
    pub login_max_delay: Duration,
    /// An account's failure count is forgotten after this long without attempts.
    pub login_window: Duration,
    /// Failed logins of one account from all clients together before each further
    /// attempt waits, except from a client that signed in to it recently.
    pub login_account_failures: u32,
    /// How long a client that signed in to an account stays exempt from the
    /// account-wide back-off.
    pub login_known_client_ttl: Duration,
    /// IPv6 clients are counted per network of this many bits (IPv4 per address).
    pub ipv6_prefix: u8,
    /// With Redis, whether the per-IP budgets live there, one budget per client for
    /// every instance (the default), or in each instance's memory: only for a single
    /// instance, or behind a proxy that enforces per-client limits itself.
    pub ip_shared: bool,
    /// Reset mails sent to one account per `reset_account_window`.
    pub reset_per_account: u32,
    pub reset_account_window: Duration,
}

impl RateLimitConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let rate_limit = Self {
            ip_per_minute: vars.positive("RATE_LIMIT_IP_PER_MINUTE", 300, RATE_MAX)?,
            reset_per_ip_per_minute: vars.positive(
                "RATE_LIMIT_RESET_PER_IP_PER_MINUTE",
                10,
                RATE_MAX,
            )?,
            reset_token_per_ip_per_minute: vars.positive(
                "RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE",
                10,
                RATE_MAX,
            )?,
            login_failures: vars.positive("RATE_LIMIT_LOGIN_FAILURES", 5, RATE_MAX)?,
            login_base_delay: vars.secs("RATE_LIMIT_LOGIN_BASE_DELAY", 2, 1, 3600)?,
            login_max_delay: vars.secs("RATE_LIMIT_LOGIN_MAX_DELAY", 900, 1, DAY)?,
            login_window: vars.secs("RATE_LIMIT_LOGIN_WINDOW", 3600, 1, 7 * DAY)?,
            login_account_failures: vars.positive(
                "RATE_LIMIT_LOGIN_ACCOUNT_FAILURES",
                100,
                RATE_MAX,
            )?,
            login_known_client_ttl: vars.secs(
                "RATE_LIMIT_LOGIN_KNOWN_CLIENT_TTL",
                30 * DAY,
                1,
                365 * DAY,
            )?,
            ipv6_prefix: vars.parse("RATE_LIMIT_IPV6_PREFIX", 64)?,
            ip_shared: vars.bool("RATE_LIMIT_IP_SHARED", true)?,
            reset_per_account: vars.positive("RATE_LIMIT_RESET_PER_ACCOUNT", 3, RATE_MAX)?,
            reset_account_window: vars.secs("RATE_LIMIT_RESET_ACCOUNT_WINDOW", 3600, 1, 7 * DAY)?,
        };
        if !(32..=128).contains(&rate_limit.ipv6_prefix) {
            return Err(ConfigError::new(
                "RATE_LIMIT_IPV6_PREFIX",
                format!("must be 32 to 128 bits, got {}", rate_limit.ipv6_prefix),
            ));
        }
        if rate_limit.login_window < rate_limit.login_max_delay {
            return Err(ConfigError::new(
                "RATE_LIMIT_LOGIN_WINDOW",
                "must be at least RATE_LIMIT_LOGIN_MAX_DELAY",
            ));
        }
        Ok(rate_limit)
    }

    pub(super) fn describe(&self) -> Described {
        vec![
            ("RATE_LIMIT_IP_PER_MINUTE", self.ip_per_minute.to_string()),
            (
                "RATE_LIMIT_RESET_PER_IP_PER_MINUTE",
                self.reset_per_ip_per_minute.to_string(),
            ),
            (
                "RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE",
                self.reset_token_per_ip_per_minute.to_string(),
            ),
            ("RATE_LIMIT_LOGIN_FAILURES", self.login_failures.to_string()),
            ("RATE_LIMIT_LOGIN_BASE_DELAY", secs(self.login_base_delay)),
            ("RATE_LIMIT_LOGIN_MAX_DELAY", secs(self.login_max_delay)),
            ("RATE_LIMIT_LOGIN_WINDOW", secs(self.login_window)),
            (
                "RATE_LIMIT_LOGIN_ACCOUNT_FAILURES",
                self.login_account_failures.to_string(),
            ),
            (
                "RATE_LIMIT_LOGIN_KNOWN_CLIENT_TTL",
                secs(self.login_known_client_ttl),
            ),
            ("RATE_LIMIT_IPV6_PREFIX", self.ipv6_prefix.to_string()),
            ("RATE_LIMIT_IP_SHARED", self.ip_shared.to_string()),
            (
                "RATE_LIMIT_RESET_PER_ACCOUNT",
                self.reset_per_account.to_string(),
            ),
            (
                "RATE_LIMIT_RESET_ACCOUNT_WINDOW",
                secs(self.reset_account_window),
            ),
        ]
    }
}

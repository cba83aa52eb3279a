//! Redis, for tokens and counters shared by several instances; unset, they stay in
//! process.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{
    ConfigError,
    vars::{Described, Vars, mask_url, secs},
};

pub(super) const VARS: &[&str] = &[
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "REDIS_POOL_SIZE",
    "REDIS_TIMEOUT",
];

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: SecretString,
    /// Prepended to every key, so several deployments (or tests) can share a server.
    pub key_prefix: String,
    pub pool_size: usize,
    pub command_timeout: Duration,
}

/// `None` without `REDIS_URL`; the other variables are then not read.
pub(super) fn read(vars: &Vars<'_>) -> Result<Option<RedisConfig>, ConfigError> {
    let Some(url) = vars.get("REDIS_URL") else {
        return Ok(None);
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(ConfigError::new(
            "REDIS_URL",
            "expected a redis:// or rediss:// URL",
        ));
    }
    if let Err(e) = fred::types::config::Config::from_url(&url) {
        return Err(ConfigError::new("REDIS_URL", e.to_string()));
    }
    Ok(Some(RedisConfig {
        url: SecretString::from(url),
        key_prefix: vars
            .get("REDIS_KEY_PREFIX")
            .unwrap_or_else(|| "identity:".into()),
        pool_size: vars.positive("REDIS_POOL_SIZE", 4, 256)?,
        command_timeout: vars.secs("REDIS_TIMEOUT", 2, 1, 60)?,
    }))
}

pub(super) fn describe(redis: Option<&RedisConfig>) -> Described {
    vec![
        (
            "REDIS_URL",
            redis.map_or("(unset: in-process token store)".into(), |r| {
                mask_url(r.url.expose_secret())
            }),
        ),
        (
            "REDIS_KEY_PREFIX",
            redis.map_or(String::new(), |r| r.key_prefix.clone()),
        ),
        (
            "REDIS_POOL_SIZE",
            redis.map_or(String::new(), |r| r.pool_size.to_string()),
        ),
        (
            "REDIS_TIMEOUT",
            redis.map_or(String::new(), |r| secs(r.command_timeout)),
        ),
    ]
}

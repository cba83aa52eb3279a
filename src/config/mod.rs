//! Typed configuration, read from environment variables and validated at start-up.
//!
//! Every problem is reported with the name of the variable at fault, and the process
//! stops. Defaults give the embedded mode: a SQLite file and a generated secret key in
//! `DATA_DIR`, an in-process token store, and mail written to the log.
//!
//! One file per section: its settings, the names of its variables (`VARS`), the
//! function that reads them and the one that describes them, side by side. A check
//! spanning sections lives in the section that owns the variable it reports, which
//! is handed what it needs (`APP_ENV`, `DATA_DIR`). `tests/settings.rs` keeps the
//! names, the reading, the description and `.env.example` in agreement.

mod account;
mod database;
mod general;
mod http;
mod instances;
mod keys;
mod mail;
mod outbox;
mod password;
mod rate_limit;
mod redis;
mod reset;
mod retention;
mod social;
mod tokens;
mod vars;
mod verification;
mod webauthn;

use std::{collections::HashMap, path::PathBuf};

pub use account::AccountConfig;
pub use database::DatabaseConfig;
pub use general::{AppEnv, LogFormat};
pub use http::HttpConfig;
pub use keys::{JwtSigning, MIN_SECRET_BYTES};
pub use mail::MailConfig;
pub use outbox::OutboxConfig;
pub use password::PasswordConfig;
pub use rate_limit::RateLimitConfig;
pub use redis::{RedisConfig, RedisTopology};
pub use reset::ResetConfig;
pub use retention::RetentionConfig;
pub use social::{ProviderConfig, ProviderKind, SocialConfig, is_provider_variable};
pub use tokens::TokenConfig;
use vars::Vars;
pub use verification::VerificationConfig;
pub use webauthn::WebauthnConfig;

/// The variables of each section, in the order `Config::describe` shows them.
const SECTIONS: &[&[&str]] = &[
    general::VARS,
    http::VARS,
    database::VARS,
    redis::VARS,
    instances::VARS,
    keys::VARS,
    tokens::VARS,
    reset::VARS,
    verification::VARS,
    account::VARS,
    webauthn::VARS,
    social::VARS,
    mail::VARS,
    outbox::VARS,
    retention::VARS,
    password::VARS,
    rate_limit::VARS,
];

/// Every variable the configuration reads, in the order `Config::describe` shows
/// them. Anything else (a typo) has no effect.
pub fn known_variables() -> Vec<&'static str> {
    SECTIONS.concat()
}

#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub env: AppEnv,
    /// Product name used in mails and as a context word for the password policy.
    pub service_name: String,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub redis: Option<RedisConfig>,
    /// Declared the only instance (`SINGLE_INSTANCE`); required in production on
    /// PostgreSQL without Redis.
    pub single_instance: bool,
    pub tokens: TokenConfig,
    pub reset: ResetConfig,
    pub verification: VerificationConfig,
    pub account: AccountConfig,
    pub webauthn: WebauthnConfig,
    pub social: SocialConfig,
    pub mail: MailConfig,
    pub outbox: OutboxConfig,
    pub retention: RetentionConfig,
    pub password: PasswordConfig,
    pub rate_limit: RateLimitConfig,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads a fixed set of variables, as tests do.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| map.get(name).cloned())
    }

    /// Reads every section; the first problem found stops it.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars { lookup };
        let general = general::General::read(&vars)?;
        let env = general.env;
        let database = DatabaseConfig::read(&vars, &general.data_dir)?;
        let redis = redis::read(&vars)?;
        let single_instance = instances::read(&vars, env, &database, redis.as_ref())?;
        Ok(Config {
            http: HttpConfig::read(&vars, env)?,
            database,
            redis,
            single_instance,
            tokens: TokenConfig::read(&vars, env, &general.data_dir)?,
            reset: ResetConfig::read(&vars, env)?,
            verification: VerificationConfig::read(&vars, env)?,
            account: AccountConfig::read(&vars, env)?,
            webauthn: WebauthnConfig::read(&vars)?,
            social: SocialConfig::read(&vars)?,
            mail: MailConfig::read(&vars, env)?,
            outbox: OutboxConfig::read(&vars)?,
            retention: RetentionConfig::read(&vars)?,
            password: PasswordConfig::read(&vars)?,
            rate_limit: RateLimitConfig::read(&vars)?,
            env,
            service_name: general.service_name,
            data_dir: general.data_dir,
            log_format: general.log_format,
        })
    }

    /// What `check-config` and the start-up log print: every setting, secrets masked.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        [
            general::describe(self),
            self.http.describe(),
            self.database.describe(),
            redis::describe(self.redis.as_ref()),
            instances::describe(self.single_instance),
            self.tokens.describe(),
            self.reset.describe(),
            self.verification.describe(),
            self.account.describe(),
            self.webauthn.describe(),
            self.social.describe(),
            self.mail.describe(),
            self.outbox.describe(),
            self.retention.describe(),
            self.password.describe(),
            self.rate_limit.describe(),
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests;

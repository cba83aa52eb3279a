//! Typed configuration, read from environment variables and validated at start-up.
//!
//! Every problem is reported with the name of the variable at fault, and the process
//! stops. Defaults give the embedded mode: a SQLite file and a generated secret key in
//! `DATA_DIR`, an in-process token store, and mail written to the log.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use base64::Engine;
use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};

/// The smallest accepted `SECRET_KEY`, in bytes (RFC 7518 §3.2 for HS256).
pub const MIN_SECRET_BYTES: usize = 32;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
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
    pub tokens: TokenConfig,
    pub reset: ResetConfig,
    pub mail: MailConfig,
    pub password: PasswordConfig,
    pub rate_limit: RateLimitConfig,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub bind_addr: SocketAddr,
    pub graphiql: bool,
    pub introspection: bool,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// Operations accepted in one JSON array batch.
    pub max_batch: usize,
    /// Origins (`https://app.example`) allowed to call from a browser; empty: none.
    pub cors_allowed_origins: Vec<axum::http::HeaderValue>,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
    pub run_migrations: bool,
    pub acquire_timeout: Duration,
}

impl DatabaseConfig {
    pub fn is_sqlite(&self) -> bool {
        self.url.expose_secret().starts_with("sqlite:")
    }
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: SecretString,
    /// Prepended to every key, so several deployments (or tests) can share one server.
    pub key_prefix: String,
    pub pool_size: usize,
    pub command_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub secret_key: SecretString,
    /// Where the secret came from, for `check-config` and the start-up log.
    pub secret_source: String,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_reuse_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct ResetConfig {
    pub ttl: Duration,
    /// Link template; `{token}` is replaced by the reset token.
    pub url_template: String,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `None`: mail goes to the log.
    pub smtp_url: Option<SecretString>,
    pub from: String,
}

#[derive(Debug, Clone)]
pub struct PasswordConfig {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// How many hashes run at once on the blocking pool.
    pub hash_concurrency: usize,
    pub min_length: usize,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Mutations per minute from one client IP.
    pub ip_per_minute: u32,
}

/// Reads variables from some source; the process environment in production, a map in
/// tests (never `std::env::set_var`).
struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    fn parse<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| ConfigError::new(var, format!("cannot parse {raw:?}: {e}"))),
        }
    }

    fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(ConfigError::new(
                var,
                format!("expected true or false, got {v:?}"),
            )),
        }
    }

    /// A duration in whole seconds, at least `min`.
    fn secs(&self, var: &'static str, default: u64, min: u64) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse(var, default)?;
        if secs < min {
            return Err(ConfigError::new(
                var,
                format!("must be at least {min} seconds, got {secs}"),
            ));
        }
        Ok(Duration::from_secs(secs))
    }

    fn positive<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default + std::fmt::Display,
        T::Err: std::fmt::Display,
    {
        let v = self.parse(var, default)?;
        if v <= T::default() {
            return Err(ConfigError::new(var, format!("must be positive, got {v}")));
        }
        Ok(v)
    }
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

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars { lookup };
        let env = match vars.get("APP_ENV").map(|v| v.trim().to_ascii_lowercase()) {
            None => AppEnv::Development,
            Some(v) if matches!(v.as_str(), "development" | "dev") => AppEnv::Development,
            Some(v) if matches!(v.as_str(), "production" | "prod") => AppEnv::Production,
            Some(v) => {
                return Err(ConfigError::new(
                    "APP_ENV",
                    format!("expected development or production, got {v:?}"),
                ));
            }
        };
        let dev = env == AppEnv::Development;
        let data_dir = PathBuf::from(vars.get("DATA_DIR").unwrap_or_else(|| "data".into()));
        let log_format = match vars
            .get("LOG_FORMAT")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => LogFormat::Pretty,
            Some(v) if v == "pretty" => LogFormat::Pretty,
            Some(v) if v == "json" => LogFormat::Json,
            Some(v) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("expected pretty or json, got {v:?}"),
                ));
            }
        };

        let http = HttpConfig {
            bind_addr: vars.parse("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            graphiql: vars.bool("GRAPHIQL_ENABLED", dev)?,
            introspection: vars.bool("INTROSPECTION_ENABLED", dev)?,
            body_limit_bytes: vars.positive("HTTP_BODY_LIMIT_BYTES", 64 * 1024)?,
            request_timeout: vars.secs("HTTP_REQUEST_TIMEOUT", 15, 1)?,
            max_batch: vars.positive("GRAPHQL_MAX_BATCH", 10)?,
            cors_allowed_origins: cors_origins(vars.get("CORS_ALLOWED_ORIGINS"))?,
        };

        let database_url = vars.get("DATABASE_URL").unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("identity.db").display()
            )
        });
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "expected a postgres:// or sqlite: URL",
            ));
        }
        let sqlite = database_url.starts_with("sqlite:");
        let database = DatabaseConfig {
            url: SecretString::from(database_url),
            max_connections: vars
                .positive("DATABASE_MAX_CONNECTIONS", if sqlite { 4 } else { 16 })?,
            run_migrations: vars.bool("RUN_MIGRATIONS", true)?,
            acquire_timeout: vars.secs("DATABASE_ACQUIRE_TIMEOUT", 5, 1)?,
        };

        let redis = match vars.get("REDIS_URL") {
            None => None,
            Some(url) => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(ConfigError::new(
                        "REDIS_URL",
                        "expected a redis:// or rediss:// URL",
                    ));
                }
                if let Err(e) = fred::types::config::Config::from_url(&url) {
                    return Err(ConfigError::new("REDIS_URL", e.to_string()));
                }
                Some(RedisConfig {
                    url: SecretString::from(url),
                    key_prefix: vars
                        .get("REDIS_KEY_PREFIX")
                        .unwrap_or_else(|| "identity:".into()),
                    pool_size: vars.positive("REDIS_POOL_SIZE", 4)?,
                    command_timeout: vars.secs("REDIS_TIMEOUT", 2, 1)?,
                })
            }
        };

        let (secret_key, secret_source) = secret_key(&vars, env, &data_dir)?;
        let tokens = TokenConfig {
            secret_key,
            secret_source,
            issuer: vars.get("JWT_ISSUER").unwrap_or_else(|| "identity".into()),
            audience: vars
                .get("JWT_AUDIENCE")
                .unwrap_or_else(|| "identity".into()),
            access_ttl: vars.secs("ACCESS_TOKEN_TTL", 900, 1)?,
            refresh_ttl: vars.secs("REFRESH_TOKEN_TTL", 7 * 24 * 3600, 1)?,
            refresh_reuse_grace: vars.secs("REFRESH_REUSE_GRACE", 10, 0)?,
        };

        let url_template = vars
            .get("PASSWORD_RESET_URL")
            .unwrap_or_else(|| "http://localhost:3000/reset-password?token={token}".into());
        if !url_template.contains("{token}") {
            return Err(ConfigError::new(
                "PASSWORD_RESET_URL",
                "must contain the placeholder {token}",
            ));
        }
        if !(url_template.starts_with("https://") || url_template.starts_with("http://")) {
            return Err(ConfigError::new(
                "PASSWORD_RESET_URL",
                "must be an http:// or https:// URL",
            ));
        }
        let reset = ResetConfig {
            ttl: vars.secs("PASSWORD_RESET_TTL", 3600, 1)?,
            url_template,
        };

        let smtp_url = vars.get("SMTP_URL");
        if let Some(url) = &smtp_url {
            crate::mail::smtp::SmtpMailer::validate_url(url)
                .map_err(|e| ConfigError::new("SMTP_URL", e))?;
        }
        let from = vars
            .get("MAIL_FROM")
            .unwrap_or_else(|| "Identity <no-reply@localhost>".into());
        if let Err(e) = from.parse::<lettre::message::Mailbox>() {
            return Err(ConfigError::new("MAIL_FROM", format!("not a mailbox: {e}")));
        }
        let mail = MailConfig {
            smtp_url: smtp_url.map(SecretString::from),
            from,
        };

        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let password = PasswordConfig {
            argon2_memory_kib: vars.positive("ARGON2_MEMORY_KIB", 19_456)?,
            argon2_iterations: vars.positive("ARGON2_ITERATIONS", 2)?,
            argon2_parallelism: vars.positive("ARGON2_PARALLELISM", 1)?,
            hash_concurrency: vars.positive("PASSWORD_HASH_CONCURRENCY", cores)?,
            min_length: vars.positive("PASSWORD_MIN_LENGTH", 8)?,
        };
        if let Err(e) = argon2::Params::new(
            password.argon2_memory_kib,
            password.argon2_iterations,
            password.argon2_parallelism,
            None,
        ) {
            return Err(ConfigError::new(
                "ARGON2_MEMORY_KIB",
                format!("invalid argon2 parameters: {e}"),
            ));
        }
        if password.min_length > crate::domain::password::MAX_LENGTH {
            return Err(ConfigError::new(
                "PASSWORD_MIN_LENGTH",
                format!(
                    "must not exceed the maximum length {}",
                    crate::domain::password::MAX_LENGTH
                ),
            ));
        }

        let rate_limit = RateLimitConfig {
            ip_per_minute: vars.positive("RATE_LIMIT_IP_PER_MINUTE", 300)?,
        };

        Ok(Config {
            env,
            service_name: vars
                .get("SERVICE_NAME")
                .unwrap_or_else(|| "Identity".into()),
            data_dir,
            log_format,
            http,
            database,
            redis,
            tokens,
            reset,
            mail,
            password,
            rate_limit,
        })
    }

    /// What `check-config` and the start-up log print: every setting, secrets masked.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let masked = |s: &SecretString| mask_url(s.expose_secret());
        let secs = |d: Duration| d.as_secs().to_string();
        let origins = self
            .http
            .cors_allowed_origins
            .iter()
            .filter_map(|o| o.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        let log_format = match self.log_format {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        };
        let redis = self.redis.as_ref();
        vec![
            ("APP_ENV", format!("{:?}", self.env).to_lowercase()),
            ("SERVICE_NAME", self.service_name.clone()),
            ("DATA_DIR", self.data_dir.display().to_string()),
            ("LOG_FORMAT", log_format.into()),
            ("BIND_ADDR", self.http.bind_addr.to_string()),
            ("GRAPHIQL_ENABLED", self.http.graphiql.to_string()),
            ("INTROSPECTION_ENABLED", self.http.introspection.to_string()),
            (
                "HTTP_BODY_LIMIT_BYTES",
                self.http.body_limit_bytes.to_string(),
            ),
            ("HTTP_REQUEST_TIMEOUT", secs(self.http.request_timeout)),
            ("GRAPHQL_MAX_BATCH", self.http.max_batch.to_string()),
            ("CORS_ALLOWED_ORIGINS", origins),
            ("DATABASE_URL", masked(&self.database.url)),
            (
                "DATABASE_MAX_CONNECTIONS",
                self.database.max_connections.to_string(),
            ),
            (
                "DATABASE_ACQUIRE_TIMEOUT",
                secs(self.database.acquire_timeout),
            ),
            ("RUN_MIGRATIONS", self.database.run_migrations.to_string()),
            (
                "REDIS_URL",
                redis.map_or("(unset: in-process token store)".into(), |r| masked(&r.url)),
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
            (
                "SECRET_KEY",
                format!("******** ({})", self.tokens.secret_source),
            ),
            ("JWT_ISSUER", self.tokens.issuer.clone()),
            ("JWT_AUDIENCE", self.tokens.audience.clone()),
            ("ACCESS_TOKEN_TTL", secs(self.tokens.access_ttl)),
            ("REFRESH_TOKEN_TTL", secs(self.tokens.refresh_ttl)),
            ("REFRESH_REUSE_GRACE", secs(self.tokens.refresh_reuse_grace)),
            ("PASSWORD_RESET_TTL", secs(self.reset.ttl)),
            ("PASSWORD_RESET_URL", self.reset.url_template.clone()),
            (
                "SMTP_URL",
                self.mail
                    .smtp_url
                    .as_ref()
                    .map_or("(unset: mail goes to the log)".into(), masked),
            ),
            ("MAIL_FROM", self.mail.from.clone()),
            (
                "ARGON2_MEMORY_KIB",
                self.password.argon2_memory_kib.to_string(),
            ),
            (
                "ARGON2_ITERATIONS",
                self.password.argon2_iterations.to_string(),
            ),
            (
                "ARGON2_PARALLELISM",
                self.password.argon2_parallelism.to_string(),
            ),
            (
                "PASSWORD_HASH_CONCURRENCY",
                self.password.hash_concurrency.to_string(),
            ),
            ("PASSWORD_MIN_LENGTH", self.password.min_length.to_string()),
            (
                "RATE_LIMIT_IP_PER_MINUTE",
                self.rate_limit.ip_per_minute.to_string(),
            ),
        ]
    }
}

/// A comma-separated list of exact origins. `*` is refused: a wildcard would let any
/// site read the answers.
fn cors_origins(raw: Option<String>) -> Result<Vec<axum::http::HeaderValue>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.trim_end_matches('/').contains('*')
                && origin
                    .split("://")
                    .nth(1)
                    .is_some_and(|h| !h.is_empty() && !h.contains('/'));
            if !valid {
                return Err(ConfigError::new(
                    "CORS_ALLOWED_ORIGINS",
                    format!("{origin:?} is not an origin like https://app.example"),
                ));
            }
            axum::http::HeaderValue::from_str(origin)
                .map_err(|e| ConfigError::new("CORS_ALLOWED_ORIGINS", e.to_string()))
        })
        .collect()
}

/// `SECRET_KEY` if given (and long enough); otherwise, outside production, a key
/// generated once and kept in `DATA_DIR/secret.key` so tokens survive a restart.
fn secret_key(
    vars: &Vars<'_>,
    env: AppEnv,
    data_dir: &Path,
) -> Result<(SecretString, String), ConfigError> {
    if let Some(key) = vars.get("SECRET_KEY") {
        if key.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::new(
                "SECRET_KEY",
                format!(
                    "must be at least {MIN_SECRET_BYTES} bytes, got {}; generate one with `openssl rand -base64 48`",
                    key.len()
                ),
            ));
        }
        return Ok((SecretString::from(key), "from SECRET_KEY".into()));
    }
    if env == AppEnv::Production {
        return Err(ConfigError::new(
            "SECRET_KEY",
            "is required when APP_ENV=production (at least 32 bytes)",
        ));
    }
    let path = data_dir.join("secret.key");
    let key = load_or_create_key(&path)
        .map_err(|e| ConfigError::new("SECRET_KEY", format!("unset, and {e}")))?;
    Ok((
        SecretString::from(key),
        format!("generated, kept in {}", path.display()),
    ))
}

fn load_or_create_key(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(key) if key.trim().len() >= MIN_SECRET_BYTES => return Ok(key.trim().to_owned()),
        Ok(_) => return Err(format!("{} holds a key that is too short", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut bytes = [0u8; 48];
    rand::rng().fill(&mut bytes);
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(path, &key).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Hides the password part of a URL (`scheme://user:***@host/...`).
fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_map(&map)
    }

    const KEY: (&str, &str) = ("SECRET_KEY", "0123456789abcdef0123456789abcdef");

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("ACCESS_TOKEN_TTL", "fifteen"),
            ("ACCESS_TOKEN_TTL", "0"),
            ("BIND_ADDR", "localhost"),
            ("APP_ENV", "staging"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("PASSWORD_RESET_URL", "https://app/reset"),
            ("MAIL_FROM", "not a mailbox"),
            ("RUN_MIGRATIONS", "maybe"),
            ("CORS_ALLOWED_ORIGINS", "*"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example/path"),
            ("SECRET_KEY", "short"),
        ] {
            let err = config(&[KEY, (var, value)]).expect_err(var);
            assert_eq!(err.var, var, "{err}");
        }
    }

    #[test]
    fn production_requires_a_long_secret() {
        let err = config(&[("APP_ENV", "production")]).expect_err("no key");
        assert_eq!(err.var, "SECRET_KEY");
        let ok = config(&[("APP_ENV", "production"), KEY]).expect("key given");
        assert!(!ok.http.graphiql && !ok.http.introspection);
    }

    #[test]
    fn generated_key_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("identity-cfg-{}", uuid::Uuid::new_v4()));
        let dir_s = dir.to_string_lossy().into_owned();
        let a = config(&[("DATA_DIR", &dir_s)]).expect("first");
        let b = config(&[("DATA_DIR", &dir_s)]).expect("second");
        assert_eq!(
            a.tokens.secret_key.expose_secret(),
            b.tokens.secret_key.expose_secret()
        );
        assert!(a.tokens.secret_key.expose_secret().len() >= MIN_SECRET_BYTES);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = config(&[KEY]).expect("defaults");
        assert_eq!(c.http.bind_addr.to_string(), "127.0.0.1:8000");
        assert_eq!(c.tokens.access_ttl, Duration::from_secs(900));
        assert_eq!(c.tokens.refresh_ttl, Duration::from_secs(604_800));
        assert_eq!(c.tokens.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(c.reset.ttl, Duration::from_secs(3600));
        assert!(c.database.is_sqlite() && c.redis.is_none() && c.mail.smtp_url.is_none());
    }

    #[test]
    fn urls_are_masked() {
        assert_eq!(
            mask_url("postgres://app:hunter2@db/identity"),
            "postgres://app:***@db/identity"
        );
        assert_eq!(mask_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}

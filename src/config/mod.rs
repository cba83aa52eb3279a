//! Typed configuration, read from environment variables and validated at start-up.
//!
//! Every problem is reported with the name of the variable at fault, and the process
//! stops. Defaults give the embedded mode: a SQLite file and a generated secret key in
//! `DATA_DIR`, an in-process token store, and mail written to the log.

mod keys;
mod vars;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

pub use keys::MIN_SECRET_BYTES;
use vars::Vars;

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
    pub outbox: OutboxConfig,
    pub retention: RetentionConfig,
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
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    /// Origins (`https://app.example`) allowed to call from a browser; empty: none.
    pub cors_allowed_origins: Vec<axum::http::HeaderValue>,
    /// Proxies whose `X-Forwarded-For` is believed; empty: the socket peer is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// A separate listener for `/metrics`; `None`: served on `bind_addr`.
    pub metrics_addr: Option<SocketAddr>,
    /// How long shutdown waits for in-flight requests and background work.
    pub shutdown_timeout: Duration,
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
    /// Prepended to every key, so several deployments (or tests) can share a server.
    pub key_prefix: String,
    pub pool_size: usize,
    pub command_timeout: Duration,
}

/// How access tokens are signed.
#[derive(Debug, Clone)]
pub enum JwtSigning {
    /// HS256 over `SECRET_KEY`; `previous` secrets still verify (rotation).
    Hs256 { previous: Vec<SecretString> },
    /// EdDSA (Ed25519); public keys served at `/.well-known/jwks.json`.
    EdDsa {
        private_pem: SecretString,
        /// Older keys (private or public PEM) that still verify.
        previous_pems: Vec<String>,
        source: String,
    },
}

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub secret_key: SecretString,
    /// Where the secret came from, for `check-config` and the start-up log.
    pub secret_source: String,
    pub signing: JwtSigning,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    /// Absolute lifetime of a session.
    pub refresh_ttl: Duration,
    /// A session unused for this long ends.
    pub refresh_idle_ttl: Duration,
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

/// Delivery of queued mail.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// How often an instance looks for mail queued by others (its own wakes it).
    pub poll_interval: Duration,
    /// The wait after a first failed delivery; doubles with each further one.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Deliveries tried before a mail is given up on.
    pub max_attempts: u32,
}

/// How long finished records are kept before the periodic purge deletes them.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How often each instance purges.
    pub interval: Duration,
    /// Kept this long after their absolute expiry (refresh tokens go with them).
    pub sessions: Duration,
    /// Sent or given-up mail (bodies already erased), from when it was queued.
    pub outbox: Duration,
}

#[derive(Debug, Clone)]
pub struct PasswordConfig {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Hashing threads: how many hashes run at once.
    pub hash_concurrency: usize,
    /// Hashes that may wait for a thread; beyond, callers are told to retry.
    pub hash_queue: usize,
    pub min_length: usize,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Mutations per minute from one client IP.
    pub ip_per_minute: u32,
    /// `requestPasswordReset` per minute from one client IP.
    pub reset_per_ip_per_minute: u32,
    /// `resetPassword` (token guesses) per minute from one client IP.
    pub reset_token_per_ip_per_minute: u32,
    /// Failed logins of one account before each further attempt waits.
    pub login_failures: u32,
    /// The first wait; each further failure doubles it, up to `login_max_delay`.
    pub login_base_delay: Duration,
    pub login_max_delay: Duration,
    /// An account's failure count is forgotten after this long without attempts.
    pub login_window: Duration,
    /// Reset mails sent to one account per `reset_account_window`.
    pub reset_per_account: u32,
    pub reset_account_window: Duration,
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
        let env = match vars.choice("APP_ENV", &["development", "production", "dev", "prod"])? {
            "production" | "prod" => AppEnv::Production,
            _ => AppEnv::Development,
        };
        let dev = env == AppEnv::Development;
        let data_dir = PathBuf::from(vars.get("DATA_DIR").unwrap_or_else(|| "data".into()));
        let log_format = match vars.choice("LOG_FORMAT", &["pretty", "json"])? {
            "json" => LogFormat::Json,
            _ => LogFormat::Pretty,
        };

        let http = HttpConfig {
            bind_addr: vars.parse("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            graphiql: vars.bool("GRAPHIQL_ENABLED", dev)?,
            introspection: vars.bool("INTROSPECTION_ENABLED", dev)?,
            body_limit_bytes: vars.positive("HTTP_BODY_LIMIT_BYTES", 64 * 1024)?,
            request_timeout: vars.secs("HTTP_REQUEST_TIMEOUT", 15, 1)?,
            max_batch: vars.positive("GRAPHQL_MAX_BATCH", 10)?,
            max_depth: vars.positive("GRAPHQL_MAX_DEPTH", 16)?,
            max_complexity: vars.positive("GRAPHQL_MAX_COMPLEXITY", 1000)?,
            max_aliases: vars.parse("GRAPHQL_MAX_ALIASES", 16)?,
            cors_allowed_origins: cors_origins(&vars.list("CORS_ALLOWED_ORIGINS"))?,
            trusted_proxies: vars
                .list("TRUSTED_PROXIES")
                .iter()
                .map(|cidr| parse_cidr(cidr))
                .collect::<Result<_, _>>()?,
            metrics_addr: match vars.get("METRICS_ADDR") {
                None => None,
                Some(_) => {
                    Some(vars.parse("METRICS_ADDR", SocketAddr::from(([127, 0, 0, 1], 9100)))?)
                }
            },
            shutdown_timeout: vars.secs("SHUTDOWN_TIMEOUT", 20, 1)?,
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

        let (secret_key, secret_source) = keys::secret_key(&vars, env, &data_dir)?;
        let tokens = TokenConfig {
            secret_key,
            secret_source,
            signing: keys::jwt_signing(&vars, env, &data_dir)?,
            issuer: vars.get("JWT_ISSUER").unwrap_or_else(|| "identity".into()),
            audience: vars
                .get("JWT_AUDIENCE")
                .unwrap_or_else(|| "identity".into()),
            access_ttl: vars.secs("ACCESS_TOKEN_TTL", 900, 1)?,
            refresh_ttl: vars.secs("REFRESH_TOKEN_TTL", 7 * 24 * 3600, 1)?,
            refresh_idle_ttl: vars.secs("REFRESH_IDLE_TTL", 3 * 24 * 3600, 1)?,
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
        if smtp_url.is_none() && env == AppEnv::Production {
            // The log would then hold reset links.
            return Err(ConfigError::new(
                "SMTP_URL",
                "is required when APP_ENV=production (without it, mail is written to the log)",
            ));
        }
        let mail = MailConfig {
            smtp_url: smtp_url.map(SecretString::from),
            from,
        };
        let outbox = OutboxConfig {
            poll_interval: vars.secs("OUTBOX_POLL_INTERVAL", 1, 1)?,
            retry_base: vars.secs("OUTBOX_RETRY_BASE", 5, 1)?,
            retry_max: vars.secs("OUTBOX_RETRY_MAX", 600, 1)?,
            max_attempts: vars.positive("OUTBOX_MAX_ATTEMPTS", 12)?,
        };
        let retention = RetentionConfig {
            interval: vars.secs("RETENTION_INTERVAL", 3600, 1)?,
            sessions: vars.secs("SESSION_RETENTION", 30 * 24 * 3600, 1)?,
            outbox: vars.secs("OUTBOX_RETENTION", 7 * 24 * 3600, 1)?,
        };

        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let password = PasswordConfig {
            argon2_memory_kib: vars.positive("ARGON2_MEMORY_KIB", 19_456)?,
            argon2_iterations: vars.positive("ARGON2_ITERATIONS", 2)?,
            argon2_parallelism: vars.positive("ARGON2_PARALLELISM", 1)?,
            hash_concurrency: vars.positive("PASSWORD_HASH_CONCURRENCY", cores)?,
            hash_queue: vars.positive("PASSWORD_HASH_QUEUE", 128)?,
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
            reset_per_ip_per_minute: vars.positive("RATE_LIMIT_RESET_PER_IP_PER_MINUTE", 10)?,
            reset_token_per_ip_per_minute: vars
                .positive("RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE", 10)?,
            login_failures: vars.positive("RATE_LIMIT_LOGIN_FAILURES", 5)?,
            login_base_delay: vars.secs("RATE_LIMIT_LOGIN_BASE_DELAY", 2, 1)?,
            login_max_delay: vars.secs("RATE_LIMIT_LOGIN_MAX_DELAY", 900, 1)?,
            login_window: vars.secs("RATE_LIMIT_LOGIN_WINDOW", 3600, 1)?,
            reset_per_account: vars.positive("RATE_LIMIT_RESET_PER_ACCOUNT", 3)?,
            reset_account_window: vars.secs("RATE_LIMIT_RESET_ACCOUNT_WINDOW", 3600, 1)?,
        };
        if rate_limit.login_window < rate_limit.login_max_delay {
            return Err(ConfigError::new(
                "RATE_LIMIT_LOGIN_WINDOW",
                "must be at least RATE_LIMIT_LOGIN_MAX_DELAY",
            ));
        }

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
            outbox,
            retention,
            password,
            rate_limit,
        })
    }

    /// What `check-config` and the start-up log print: every setting, secrets masked.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let masked = |s: &SecretString| mask_url(s.expose_secret());
        let secs = |d: Duration| d.as_secs().to_string();
        let join = |items: Vec<String>| items.join(",");
        let redis = self.redis.as_ref();
        let (algorithm, previous_keys, private_key) = match &self.tokens.signing {
            JwtSigning::Hs256 { previous } => ("HS256", previous.len(), String::new()),
            JwtSigning::EdDsa {
                previous_pems,
                source,
                ..
            } => ("EdDSA", previous_pems.len(), format!("******** ({source})")),
        };
        let rl = &self.rate_limit;
        vec![
            ("APP_ENV", format!("{:?}", self.env).to_lowercase()),
            ("SERVICE_NAME", self.service_name.clone()),
            ("DATA_DIR", self.data_dir.display().to_string()),
            (
                "LOG_FORMAT",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
            ("BIND_ADDR", self.http.bind_addr.to_string()),
            ("GRAPHIQL_ENABLED", self.http.graphiql.to_string()),
            ("INTROSPECTION_ENABLED", self.http.introspection.to_string()),
            (
                "HTTP_BODY_LIMIT_BYTES",
                self.http.body_limit_bytes.to_string(),
            ),
            ("HTTP_REQUEST_TIMEOUT", secs(self.http.request_timeout)),
            ("GRAPHQL_MAX_BATCH", self.http.max_batch.to_string()),
            ("GRAPHQL_MAX_DEPTH", self.http.max_depth.to_string()),
            (
                "GRAPHQL_MAX_COMPLEXITY",
                self.http.max_complexity.to_string(),
            ),
            ("GRAPHQL_MAX_ALIASES", self.http.max_aliases.to_string()),
            (
                "CORS_ALLOWED_ORIGINS",
                join(
                    self.http
                        .cors_allowed_origins
                        .iter()
                        .filter_map(|o| o.to_str().ok().map(str::to_owned))
                        .collect(),
                ),
            ),
            (
                "TRUSTED_PROXIES",
                join(
                    self.http
                        .trusted_proxies
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                ),
            ),
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
                keys::describe_secret(&self.tokens.secret_key, &self.tokens.secret_source),
            ),
            (
                "SECRET_KEY_PREVIOUS",
                format!("{previous_keys} older key(s)"),
            ),
            ("JWT_ALGORITHM", algorithm.into()),
            ("JWT_PRIVATE_KEY", private_key),
            ("JWT_ISSUER", self.tokens.issuer.clone()),
            ("JWT_AUDIENCE", self.tokens.audience.clone()),
            ("ACCESS_TOKEN_TTL", secs(self.tokens.access_ttl)),
            ("REFRESH_TOKEN_TTL", secs(self.tokens.refresh_ttl)),
            ("REFRESH_IDLE_TTL", secs(self.tokens.refresh_idle_ttl)),
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
            ("OUTBOX_POLL_INTERVAL", secs(self.outbox.poll_interval)),
            ("OUTBOX_RETRY_BASE", secs(self.outbox.retry_base)),
            ("OUTBOX_RETRY_MAX", secs(self.outbox.retry_max)),
            ("OUTBOX_MAX_ATTEMPTS", self.outbox.max_attempts.to_string()),
            ("RETENTION_INTERVAL", secs(self.retention.interval)),
            ("SESSION_RETENTION", secs(self.retention.sessions)),
            ("OUTBOX_RETENTION", secs(self.retention.outbox)),
            (
                "METRICS_ADDR",
                self.http
                    .metrics_addr
                    .map_or("(unset: /metrics on BIND_ADDR)".into(), |a| a.to_string()),
            ),
            ("SHUTDOWN_TIMEOUT", secs(self.http.shutdown_timeout)),
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
            ("PASSWORD_HASH_QUEUE", self.password.hash_queue.to_string()),
            ("PASSWORD_MIN_LENGTH", self.password.min_length.to_string()),
            ("RATE_LIMIT_IP_PER_MINUTE", rl.ip_per_minute.to_string()),
            (
                "RATE_LIMIT_RESET_PER_IP_PER_MINUTE",
                rl.reset_per_ip_per_minute.to_string(),
            ),
            (
                "RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE",
                rl.reset_token_per_ip_per_minute.to_string(),
            ),
            ("RATE_LIMIT_LOGIN_FAILURES", rl.login_failures.to_string()),
            ("RATE_LIMIT_LOGIN_BASE_DELAY", secs(rl.login_base_delay)),
            ("RATE_LIMIT_LOGIN_MAX_DELAY", secs(rl.login_max_delay)),
            ("RATE_LIMIT_LOGIN_WINDOW", secs(rl.login_window)),
            (
                "RATE_LIMIT_RESET_PER_ACCOUNT",
                rl.reset_per_account.to_string(),
            ),
            (
                "RATE_LIMIT_RESET_ACCOUNT_WINDOW",
                secs(rl.reset_account_window),
            ),
        ]
    }
}

/// Exact origins only. `*` is refused: a wildcard would let any site read the answers.
fn cors_origins(list: &[String]) -> Result<Vec<axum::http::HeaderValue>, ConfigError> {
    list.iter()
        .map(|origin| {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.contains('*')
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

/// A CIDR (`10.0.0.0/8`) or a single address (`10.0.0.1`).
fn parse_cidr(raw: &str) -> Result<IpNet, ConfigError> {
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ConfigError::new(
                "TRUSTED_PROXIES",
                format!("{raw:?} is not a CIDR or IP address"),
            )
        })
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

// TEMPORARY: replaced by the config split
/// The names of every variable the configuration reads: what `describe` prints for a
/// default configuration, and those `from_lookup` reads that it does not print.
pub fn known_variables() -> Vec<&'static str> {
    // A key given, so that building the default configuration writes none to
    // DATA_DIR; it signs nothing.
    let key = {
        use base64::Engine;
        use rand::RngExt;
        let mut bytes = [0u8; 48];
        rand::rng().fill(&mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let lookup = |name: &str| (name == "SECRET_KEY").then(|| key.clone());
    let mut names: Vec<&'static str> = match Config::from_lookup(&lookup) {
        Ok(config) => config
            .describe()
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
        Err(_) => Vec::new(),
    };
    // Read by `keys::jwt_signing` (EdDSA only), not printed by `describe`.
    names.push("JWT_PREVIOUS_KEYS");
    names
}

#[cfg(test)]
mod tests;

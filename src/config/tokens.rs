//! Access and refresh tokens: who issues them, for whom, and for how long. Their key
//! material (`SECRET_KEY`, `JWT_*` keys) is read and described by `keys.rs`.

use std::{path::Path, time::Duration};

use secrecy::SecretString;

use super::{
    AppEnv, ConfigError, JwtSigning, keys,
    vars::{DAY, Described, Vars, secs},
};

pub(super) const VARS: &[&str] = &[
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "ACCESS_TOKEN_TTL",
    "REFRESH_TOKEN_TTL",
    "REFRESH_IDLE_TTL",
    "REFRESH_REUSE_GRACE",
    "MAX_SESSIONS_PER_USER",
];

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub secret_key: SecretString,
    /// Where the secret came from, for `check-config` and the start-up log.
    pub secret_source: String,
    /// Older secrets (`SECRET_KEY_PREVIOUS`): they still verify HS256 access tokens
    /// and open what was sealed at rest under them (mail in the outbox).
    pub previous_secret_keys: Vec<SecretString>,
    pub signing: JwtSigning,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    /// Absolute lifetime of a session.
    pub refresh_ttl: Duration,
    /// A session unused for this long ends.
    pub refresh_idle_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    /// Live sessions a user may have; a new one beyond ends the oldest.
    pub max_sessions_per_user: u32,
}

impl TokenConfig {
    /// Missing keys are refused in production, generated into `data_dir` otherwise.
    pub(super) fn read(vars: &Vars<'_>, env: AppEnv, data_dir: &Path) -> Result<Self, ConfigError> {
        let (secret_key, secret_source) = keys::secret_key(vars, env, data_dir)?;
        Ok(Self {
            secret_key,
            secret_source,
            previous_secret_keys: keys::previous_secrets(vars)?,
            signing: keys::jwt_signing(vars, env, data_dir)?,
            issuer: vars.get("JWT_ISSUER").unwrap_or_else(|| "identity".into()),
            audience: vars
                .get("JWT_AUDIENCE")
                .unwrap_or_else(|| "identity".into()),
            access_ttl: vars.secs("ACCESS_TOKEN_TTL", 900, 1, DAY)?,
            refresh_ttl: vars.secs("REFRESH_TOKEN_TTL", 7 * DAY, 1, 365 * DAY)?,
            refresh_idle_ttl: vars.secs("REFRESH_IDLE_TTL", 3 * DAY, 1, 365 * DAY)?,
            refresh_reuse_grace: vars.secs("REFRESH_REUSE_GRACE", 10, 0, 300)?,
            max_sessions_per_user: vars.positive("MAX_SESSIONS_PER_USER", 100, 100_000)?,
        })
    }

    /// The key material first (`keys::VARS`), then this section's own variables.
    pub(super) fn describe(&self) -> Described {
        let mut lines = keys::describe(
            &self.secret_key,
            &self.secret_source,
            &self.previous_secret_keys,
            &self.signing,
        );
        lines.extend([
            ("JWT_ISSUER", self.issuer.clone()),
            ("JWT_AUDIENCE", self.audience.clone()),
            ("ACCESS_TOKEN_TTL", secs(self.access_ttl)),
            ("REFRESH_TOKEN_TTL", secs(self.refresh_ttl)),
            ("REFRESH_IDLE_TTL", secs(self.refresh_idle_ttl)),
            ("REFRESH_REUSE_GRACE", secs(self.refresh_reuse_grace)),
            (
                "MAX_SESSIONS_PER_USER",
                self.max_sessions_per_user.to_string(),
            ),
        ]);
        lines
    }
}

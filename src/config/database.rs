//! The database: PostgreSQL, or by default a SQLite file in `DATA_DIR`.

use std::{path::Path, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use super::{
    ConfigError,
    vars::{Described, Vars, mask_url, secs},
};

pub(super) const VARS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_ACQUIRE_TIMEOUT",
    "RUN_MIGRATIONS",
];

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

    /// Unset, the URL is that of `identity.db` in `data_dir`.
    pub(super) fn read(vars: &Vars<'_>, data_dir: &Path) -> Result<Self, ConfigError> {
        let url = vars.get("DATABASE_URL").unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("identity.db").display()
            )
        });
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "expected a postgres:// or sqlite: URL",
            ));
        }
        let sqlite = url.starts_with("sqlite:");
        Ok(Self {
            url: SecretString::from(url),
            max_connections: vars.positive(
                "DATABASE_MAX_CONNECTIONS",
                if sqlite { 4 } else { 16 },
                1000,
            )?,
            run_migrations: vars.bool("RUN_MIGRATIONS", true)?,
            acquire_timeout: vars.secs("DATABASE_ACQUIRE_TIMEOUT", 5, 1, 300)?,
        })
    }

    pub(super) fn describe(&self) -> Described {
        vec![
            ("DATABASE_URL", mask_url(self.url.expose_secret())),
            ("DATABASE_MAX_CONNECTIONS", self.max_connections.to_string()),
            ("DATABASE_ACQUIRE_TIMEOUT", secs(self.acquire_timeout)),
            ("RUN_MIGRATIONS", self.run_migrations.to_string()),
        ]
    }
}

//! Password reset: how long a mailed link is valid, and where it points.

use std::time::Duration;

use super::{
    AppEnv, ConfigError,
    vars::{DAY, Described, Vars, secs},
};

pub(super) const VARS: &[&str] = &["PASSWORD_RESET_TTL", "PASSWORD_RESET_URL"];

#[derive(Debug, Clone)]
pub struct ResetConfig {
    pub ttl: Duration,
    /// Link template; `{token}` is replaced by the reset token.
    pub url_template: String,
}

impl ResetConfig {
    /// In production the link must be `https://`: it carries a token worth an account.
    pub(super) fn read(vars: &Vars<'_>, env: AppEnv) -> Result<Self, ConfigError> {
        let url_template = vars.link_template(
            "PASSWORD_RESET_URL",
            "http://localhost:3000/reset-password?token={token}",
            env,
        )?;
        Ok(Self {
            ttl: vars.secs("PASSWORD_RESET_TTL", 3600, 1, 7 * DAY)?,
            url_template,
        })
    }

    pub(super) fn describe(&self) -> Described {
        vec![
            ("PASSWORD_RESET_TTL", secs(self.ttl)),
            ("PASSWORD_RESET_URL", self.url_template.clone()),
        ]
    }
}

//! Email verification: how long a mailed link is valid, where it points, and whether
//! an unverified account may sign in.

use std::time::Duration;

use super::{
    AppEnv, ConfigError,
    vars::{DAY, Described, Vars, secs},
};

pub(super) const VARS: &[&str] = &[
    "EMAIL_VERIFY_TTL",
    "EMAIL_VERIFY_URL",
    "REQUIRE_VERIFIED_EMAIL",
];

#[derive(Debug, Clone)]
pub struct VerificationConfig {
    pub ttl: Duration,
    /// Link template; `{token}` is replaced by the verification token.
    pub url_template: String,
    /// When true, `register` and `login` answer `EMAIL_NOT_VERIFIED` (no tokens) for an
    /// account whose address is not verified.
    pub required: bool,
}

impl VerificationConfig {
    /// In production the link must be `https://`: it carries a single-use token.
    pub(super) fn read(vars: &Vars<'_>, env: AppEnv) -> Result<Self, ConfigError> {
        let url_template = vars.link_template(
            "EMAIL_VERIFY_URL",
            "http://localhost:3000/verify-email?token={token}",
            env,
        )?;
        Ok(Self {
            ttl: vars.secs("EMAIL_VERIFY_TTL", DAY, 60, 30 * DAY)?,
            url_template,
            required: vars.bool("REQUIRE_VERIFIED_EMAIL", false)?,
        })
    }

    pub(super) fn describe(&self) -> Described {
        vec![
            ("EMAIL_VERIFY_TTL", secs(self.ttl)),
            ("EMAIL_VERIFY_URL", self.url_template.clone()),
            ("REQUIRE_VERIFIED_EMAIL", self.required.to_string()),
        ]
    }
}

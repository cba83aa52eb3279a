//! Account self-service: how recently a credential must have been proved for a
//! sensitive operation, where the email-change and deletion-cancel links point, and how
//! long a deleted account waits before it is purged.

use std::time::Duration;

use super::{
    AppEnv, ConfigError,
    vars::{DAY, Described, Vars, secs},
};

pub(super) const VARS: &[&str] = &[
    "REAUTH_MAX_AGE",
    "EMAIL_CHANGE_URL",
    "ACCOUNT_DELETION_GRACE",
    "ACCOUNT_DELETION_CANCEL_URL",
];

#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// A session is fresh while its `auth_time` is at most this old.
    pub reauth_max_age: Duration,
    /// Confirm link mailed to a new address; `{token}` is replaced.
    pub email_change_url: String,
    /// How long a deletion can be cancelled before the account is purged; zero purges
    /// at once.
    pub deletion_grace: Duration,
    /// Cancel link mailed when a deletion is requested; `{token}` is replaced.
    pub deletion_cancel_url: String,
}

impl AccountConfig {
    pub(super) fn read(vars: &Vars<'_>, env: AppEnv) -> Result<Self, ConfigError> {
        Ok(Self {
            reauth_max_age: vars.secs("REAUTH_MAX_AGE", 300, 10, DAY)?,
            email_change_url: vars.link_template(
                "EMAIL_CHANGE_URL",
                "http://localhost:3000/confirm-email?token={token}",
                env,
            )?,
            deletion_grace: vars.secs("ACCOUNT_DELETION_GRACE", 14 * DAY, 0, 365 * DAY)?,
            deletion_cancel_url: vars.link_template(
                "ACCOUNT_DELETION_CANCEL_URL",
                "http://localhost:3000/cancel-deletion?token={token}",
                env,
            )?,
        })
    }

    pub(super) fn describe(&self) -> Described {
        vec![
            ("REAUTH_MAX_AGE", secs(self.reauth_max_age)),
            ("EMAIL_CHANGE_URL", self.email_change_url.clone()),
            ("ACCOUNT_DELETION_GRACE", secs(self.deletion_grace)),
            (
                "ACCOUNT_DELETION_CANCEL_URL",
                self.deletion_cancel_url.clone(),
            ),
        ]
    }
}

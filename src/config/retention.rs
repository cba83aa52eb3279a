//! How long finished records are kept before the periodic purge deletes them.

use std::time::Duration;

use super::{
    ConfigError,
    vars::{DAY, Described, Vars, secs},
};

pub(super) const VARS: &[&str] = &[
    "RETENTION_INTERVAL",
    "SESSION_RETENTION",
    "OUTBOX_RETENTION",
    "AUDIT_RETENTION",
];

/// How long finished records are kept before the periodic purge deletes them.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How often each instance purges.
    pub interval: Duration,
    /// Kept this long after they end: expire, are revoked or go unused for the idle
    /// lifetime (refresh tokens, IP and user agent go with them).
    pub sessions: Duration,
    /// Sent or given-up mail (bodies already erased), from when it was queued.
    pub outbox: Duration,
    /// Audit events, from when they occurred.
    pub audit: Duration,
}

impl RetentionConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            interval: vars.secs("RETENTION_INTERVAL", 3600, 1, 7 * DAY)?,
            sessions: vars.secs("SESSION_RETENTION", 30 * DAY, 1, 3650 * DAY)?,
            outbox: vars.secs("OUTBOX_RETENTION", 7 * DAY, 1, 3650 * DAY)?,
            audit: vars.secs("AUDIT_RETENTION", 365 * DAY, 1, 3650 * DAY)?,
        })
    }

    pub(super) fn describe(&self) -> Described {
        vec![
            ("RETENTION_INTERVAL", secs(self.interval)),
            ("SESSION_RETENTION", secs(self.sessions)),
            ("OUTBOX_RETENTION", secs(self.outbox)),
            ("AUDIT_RETENTION", secs(self.audit)),
        ]
    }
}

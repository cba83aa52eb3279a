//! Delivery of queued mail by the outbox worker.

use std::time::Duration;

use super::{
    ConfigError,
    vars::{DAY, Described, Vars, secs},
};

pub(super) const VARS: &[&str] = &[
    "OUTBOX_POLL_INTERVAL",
    "OUTBOX_RETRY_BASE",
    "OUTBOX_RETRY_MAX",
    "OUTBOX_MAX_ATTEMPTS",
];

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

impl OutboxConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            poll_interval: vars.secs("OUTBOX_POLL_INTERVAL", 1, 1, 3600)?,
            retry_base: vars.secs("OUTBOX_RETRY_BASE", 5, 1, DAY)?,
            retry_max: vars.secs("OUTBOX_RETRY_MAX", 600, 1, 7 * DAY)?,
            max_attempts: vars.positive("OUTBOX_MAX_ATTEMPTS", 12, 100)?,
        })
    }

    pub(super) fn describe(&self) -> Described {
        vec![
            ("OUTBOX_POLL_INTERVAL", secs(self.poll_interval)),
            ("OUTBOX_RETRY_BASE", secs(self.retry_base)),
            ("OUTBOX_RETRY_MAX", secs(self.retry_max)),
            ("OUTBOX_MAX_ATTEMPTS", self.max_attempts.to_string()),
        ]
    }
}

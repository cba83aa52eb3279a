//! Per-account limits: back-off on login attempts, and a cap on reset mails. (Per-IP
//! limits are `security::per_ip_limits`.) The counters live in the counter store, so
//! with Redis every instance shares one budget. If it cannot be reached, an in-process
//! store takes over: the limits then hold per instance instead of failing open.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{
    clock::Clock,
    config::RateLimitConfig,
    domain::{backoff::ExponentialBackoff, email::Email},
    store::ephemeral::{Backoff, CounterStore, MemoryStore},
};

/// Why a login attempt may not start now.
#[derive(Debug, thiserror::Error)]
pub enum LoginRefused {
    /// The account is cooling down after failed attempts; the client may retry then.
    #[error("the account is cooling down for {retry_after:?}")]
    CoolingDown { retry_after: std::time::Duration },
    /// Neither the counter store nor the in-process fallback could count the attempt.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

pub struct PerAccountLimits {
    store: Arc<dyn CounterStore>,
    fallback: MemoryStore,
    clock: Arc<dyn Clock>,
    backoff: Backoff,
    reset_per_account: u32,
    reset_window: std::time::Duration,
}

/// Counter keys name accounts by a hash, so no address is stored in the token store.
fn account_key(kind: &str, email: &Email) -> String {
    let digest = Sha256::digest(format!("{kind}:{}", email.as_str()).as_bytes());
    format!("{kind}:{}", URL_SAFE_NO_PAD.encode(digest))
}

impl PerAccountLimits {
    pub fn new(store: Arc<dyn CounterStore>, clock: Arc<dyn Clock>, cfg: &RateLimitConfig) -> Self {
        Self {
            store,
            fallback: MemoryStore::new(),
            clock,
            backoff: Backoff {
                free: cfg.login_failures,
                delays: ExponentialBackoff {
                    base: cfg.login_base_delay,
                    max: cfg.login_max_delay,
                },
                window: cfg.login_window,
            },
            reset_per_account: cfg.reset_per_account,
            reset_window: cfg.reset_account_window,
        }
    }

    /// Counts a login attempt for `email`, or refuses it while the account cools down.
    pub async fn begin_login(&self, email: &Email) -> Result<(), LoginRefused> {
        let key = account_key("login", email);
        let now = self.clock.now();
        let wait = match self
            .store
            .begin_login_attempt(&key, now, &self.backoff)
            .await
        {
            Ok(wait) => wait,
            Err(error) => {
                tracing::warn!(
                    error = %format!("{error:#}"),
                    "login throttle store unreachable; limiting in process"
                );
                self.fallback
                    .begin_login_attempt(&key, now, &self.backoff)
                    .await?
            }
        };
        match wait {
            Some(retry_after) => Err(LoginRefused::CoolingDown { retry_after }),
            None => Ok(()),
        }
    }

    /// The account proved its password (login or reset): its attempts start over.
    pub async fn forget_login_attempts(&self, email: &Email) {
        let key = account_key("login", email);
        let _ = self.fallback.clear_login_attempts(&key).await;
        if let Err(error) = self.store.clear_login_attempts(&key).await {
            tracing::warn!(error = %format!("{error:#}"), "could not clear login attempts");
        }
    }

    /// Whether one more reset mail may go to `email` in the current window.
    pub async fn allow_reset_mail(&self, email: &Email) -> anyhow::Result<bool> {
        let key = account_key("reset", email);
        let now = self.clock.now();
        let count = match self
            .store
            .count_in_window(&key, now, self.reset_window)
            .await
        {
            Ok(count) => count,
            Err(error) => {
                tracing::warn!(
                    error = %format!("{error:#}"),
                    "reset limit store unreachable; limiting in process"
                );
                self.fallback
                    .count_in_window(&key, now, self.reset_window)
                    .await?
            }
        };
        Ok(count <= u64::from(self.reset_per_account))
    }
}

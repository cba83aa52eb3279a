//! Per-account limits: back-off on login attempts, and caps on reset and verification
//! mails and on data exports. (Per-IP
//! limits are `security::per_ip_limits`.) The counters live in the counter store, so
//! with Redis every instance shares one budget. If it cannot be reached, an in-process
//! store takes over: the limits then hold per instance instead of failing open.
//!
//! Login attempts back off per (account, client): failures from elsewhere do not keep
//! the owner out. A looser account-wide back-off holds attempts spread over many
//! clients; a client that signed in to the account recently does not wait for it.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{
    clock::Clock,
    config::RateLimitConfig,
    domain::{backoff::ExponentialBackoff, client::ClientKey, email::Email},
    store::ephemeral::{Backoff, CounterStore, LoginKeys, LoginLimits, MemoryStore},
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

const VERIFY_MINUTE: std::time::Duration = std::time::Duration::from_secs(60);
const VERIFY_HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
/// Requests to change an account's address in an hour: each mails a link to an address
/// the requester chose, so a taken-over session cannot make the service mail anyone
/// in volume.
pub const EMAIL_CHANGES_PER_HOUR: u64 = 5;
pub const EMAIL_CHANGE_WINDOW: std::time::Duration = VERIFY_HOUR;
/// Data exports (`myData`) an account may make in a day (UTC).
pub const DATA_EXPORTS_PER_DAY: u64 = 5;

pub struct PerAccountLimits {
    store: Arc<dyn CounterStore>,
    fallback: MemoryStore,
    clock: Arc<dyn Clock>,
    login: LoginLimits,
    known_for: std::time::Duration,
    reset_per_account: u32,
    reset_window: std::time::Duration,
}

/// Counter keys name accounts by a hash, so no address is stored in the token store.
fn account_key(kind: &str, email: &Email) -> String {
    format!("{kind}:{}", digest(&format!("{kind}:{}", email.as_str())))
}

fn digest(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

/// The keys of a login attempt on `email` from `client`: hashes of both, the account's
/// in braces (one Redis Cluster slot for the three).
fn login_keys(email: &Email, client: ClientKey) -> LoginKeys {
    let account = digest(&format!("login:{}", email.as_str()));
    let pair = |kind: &str| digest(&format!("{kind}:{}:{client}", email.as_str()));
    LoginKeys {
        client: format!("login:{{{account}}}:client:{}", pair("login-client")),
        known: format!("login:{{{account}}}:known:{}", pair("login-known")),
        account: format!("login:{{{account}}}"),
    }
}

impl PerAccountLimits {
    pub fn new(store: Arc<dyn CounterStore>, clock: Arc<dyn Clock>, cfg: &RateLimitConfig) -> Self {
        let backoff = |free| Backoff {
            free,
            delays: ExponentialBackoff {
                base: cfg.login_base_delay,
                max: cfg.login_max_delay,
            },
            window: cfg.login_window,
        };
        Self {
            store,
            fallback: MemoryStore::new(),
            clock,
            login: LoginLimits {
                client: backoff(cfg.login_failures),
                account: backoff(cfg.login_account_failures),
            },
            known_for: cfg.login_known_client_ttl,
            reset_per_account: cfg.reset_per_account,
            reset_window: cfg.reset_account_window,
        }
    }

    /// Counts a login attempt on `email` from `client`, or refuses it while that client
    /// (or, for a client not known to the account, the account) cools down.
    pub async fn begin_login(&self, email: &Email, client: ClientKey) -> Result<(), LoginRefused> {
        let keys = login_keys(email, client);
        let now = self.clock.now();
        let wait = match self
            .store
            .begin_login_attempt(&keys, now, &self.login)
            .await
        {
            Ok(wait) => wait,
            Err(error) => {
                tracing::warn!(
                    error = %format!("{error:#}"),
                    "login throttle store unreachable; limiting in process"
                );
                self.fallback
                    .begin_login_attempt(&keys, now, &self.login)
                    .await?
            }
        };
        match wait {
            Some(retry_after) => Err(LoginRefused::CoolingDown { retry_after }),
            None => Ok(()),
        }
    }

    /// `client` signed in to `email`: its attempts start over, and it no longer waits
    /// for the account-wide back-off (for `RATE_LIMIT_LOGIN_KNOWN_CLIENT_TTL`).
    pub async fn login_succeeded(&self, email: &Email, client: ClientKey) {
        let keys = login_keys(email, client);
        let now = self.clock.now();
        let _ = self
            .fallback
            .login_succeeded(&keys, now, self.known_for)
            .await;
        if let Err(error) = self.store.login_succeeded(&keys, now, self.known_for).await {
            tracing::warn!(error = %format!("{error:#}"), "could not record a successful login");
        }
    }

    /// The owner proved control of the account (a password reset from `client`): the
    /// account's attempts, and this client's, start over.
    pub async fn forget_login_attempts(&self, email: &Email, client: ClientKey) {
        let keys = login_keys(email, client);
        let _ = self.fallback.clear_login_attempts(&keys).await;
        if let Err(error) = self.store.clear_login_attempts(&keys).await {
            tracing::warn!(error = %format!("{error:#}"), "could not clear login attempts");
        }
    }

    /// Whether one more verification mail may go to `email`: one a minute, five an
    /// hour. Every call counts, whatever follows.
    pub async fn allow_verification_mail(&self, email: &Email) -> anyhow::Result<bool> {
        let minute = self
            .count(&account_key("verify-minute", email), VERIFY_MINUTE)
            .await?;
        let hour = self
            .count(&account_key("verify-hour", email), VERIFY_HOUR)
            .await?;
        Ok(minute <= 1 && hour <= 5)
    }

    /// Whether the account `user_id` may request one more change of address now
    /// (`EMAIL_CHANGES_PER_HOUR`). Every call counts.
    pub async fn allow_email_change(&self, user_id: uuid::Uuid) -> anyhow::Result<bool> {
        let count = self
            .count(&format!("email-change:{user_id}"), EMAIL_CHANGE_WINDOW)
            .await?;
        Ok(count <= EMAIL_CHANGES_PER_HOUR)
    }

    /// Counts one event under `key` in a window, in the shared store or else in
    /// process.
    async fn count(&self, key: &str, window: std::time::Duration) -> anyhow::Result<u64> {
        let now = self.clock.now();
        match self.store.count_in_window(key, now, window).await {
            Ok(count) => Ok(count),
            Err(error) => {
                tracing::warn!(
                    error = %format!("{error:#}"),
                    "per-account quota store unreachable; limiting in process"
                );
                self.fallback.count_in_window(key, now, window).await
            }
        }
    }

    /// Whether `email`'s account may export its data once more today (UTC): at most
    /// `DATA_EXPORTS_PER_DAY`. `Err` carries the wait until the next day. Every call
    /// counts, whatever follows.
    pub async fn allow_data_export(
        &self,
        email: &Email,
    ) -> anyhow::Result<Result<(), std::time::Duration>> {
        let now = self.clock.now();
        let today = now.date_naive();
        let tomorrow = today
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .unwrap_or(now);
        let left = (tomorrow - now).to_std().unwrap_or_default();
        // One key a day: the window ends at midnight (a little after, so the counter
        // never outlives its key's day by less than a clock skew).
        let key = account_key(&format!("export-{today}"), email);
        let count = self
            .count(&key, left + std::time::Duration::from_secs(60))
            .await?;
        if count <= DATA_EXPORTS_PER_DAY {
            Ok(Ok(()))
        } else {
            Ok(Err(left.max(std::time::Duration::from_secs(1))))
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

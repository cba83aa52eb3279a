//! Per-account counters in Redis, each updated by one script so concurrent
//! instances count every attempt.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use fred::interfaces::KeysInterface;

use super::RedisStore;
use crate::store::ephemeral::{Backoff, CounterStore};

/// Counts a login attempt unless the account is cooling down; starts the next
/// cool-down once the free attempts are used. Returns the wait in ms, or 0 to go ahead.
/// KEYS[1] attempts hash; ARGV now_ms, free, base_ms, max_ms, window_ms.
pub(super) const BEGIN_LOGIN_ATTEMPT: &str = r#"
local now = tonumber(ARGV[1])
local wait_until = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if wait_until > now then return wait_until - now end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local free = tonumber(ARGV[2])
if n >= free then
  local delay = tonumber(ARGV[3]) * (2 ^ math.min(n - free, 30))
  delay = math.min(delay, tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'until', string.format('%d', now + delay))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 0
"#;

/// INCR with the window's expiry set by the first event. KEYS[1] counter; ARGV window_ms.
pub(super) const COUNT_IN_WINDOW: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"#;

#[async_trait::async_trait]
impl CounterStore for RedisStore {
    async fn begin_login_attempt(
        &self,
        account: &str,
        now: DateTime<Utc>,
        backoff: &Backoff,
    ) -> anyhow::Result<Option<Duration>> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).to_string();
        let wait_ms: i64 = self
            .login_script
            .evalsha_with_reload(
                self.connected()?,
                vec![self.attempts_key(account)],
                vec![
                    now.timestamp_millis().to_string(),
                    backoff.free.to_string(),
                    ms(backoff.delays.base),
                    ms(backoff.delays.max),
                    ms(backoff.window),
                ],
            )
            .await
            .context("count login attempt")?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))))
    }

    async fn clear_login_attempts(&self, account: &str) -> anyhow::Result<()> {
        let _: i64 = self
            .connected()?
            .del(self.attempts_key(account))
            .await
            .context("clear login attempts")?;
        Ok(())
    }

    async fn count_in_window(
        &self,
        key: &str,
        _now: DateTime<Utc>,
        window: Duration,
    ) -> anyhow::Result<u64> {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let count: u64 = self
            .count_script
            .evalsha_with_reload(
                self.connected()?,
                vec![format!("{}count:{key}", self.prefix)],
                vec![window_ms.to_string()],
            )
            .await
            .context("count event")?;
        Ok(count)
    }
}

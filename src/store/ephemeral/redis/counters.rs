//! Per-account counters in Redis, each updated by one script so concurrent
//! instances count every attempt.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use fred::interfaces::KeysInterface;

use super::RedisStore;
use crate::store::ephemeral::{CounterStore, LoginKeys, LoginLimits};

/// Milliseconds, as a script argument.
fn ms(d: Duration) -> String {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).to_string()
}

/// Counts a login attempt from a client unless that client cools down on the account,
/// or the account cools down and the client is not known to it; counts it for the
/// client and for the account, and starts the next cool-down of either once its free
/// attempts are used. Returns the wait in ms, or 0 to go ahead.
/// KEYS[1] account attempts, KEYS[2] client attempts, KEYS[3] known-client marker;
/// ARGV now_ms, client_free, account_free, base_ms, max_ms, window_ms.
pub(super) const BEGIN_LOGIN_ATTEMPT: &str = r#"
local now = tonumber(ARGV[1])
local function wait(key)
  local wait_until = tonumber(redis.call('HGET', key, 'until') or '0')
  if wait_until > now then return wait_until - now end
  return 0
end
local pending = wait(KEYS[2])
if pending == 0 and redis.call('EXISTS', KEYS[3]) == 0 then pending = wait(KEYS[1]) end
if pending > 0 then return pending end
local function count(key, free)
  local n = redis.call('HINCRBY', key, 'n', 1)
  if n >= free then
    local delay = tonumber(ARGV[4]) * (2 ^ math.min(n - free, 30))
    delay = math.min(delay, tonumber(ARGV[5]))
    redis.call('HSET', key, 'until', string.format('%d', now + delay))
  end
  redis.call('PEXPIRE', key, ARGV[6])
end
count(KEYS[2], tonumber(ARGV[2]))
count(KEYS[1], tonumber(ARGV[3]))
return 0
"#;

/// A client signed in: forgets its attempts, takes its successful attempt off the
/// account's count, and marks it known for a while.
/// KEYS[1] client attempts, KEYS[2] known-client marker, KEYS[3] account attempts;
/// ARGV known_ms.
pub(super) const LOGIN_SUCCEEDED: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
if tonumber(redis.call('HGET', KEYS[3], 'n') or '0') > 0 then
  redis.call('HINCRBY', KEYS[3], 'n', -1)
end
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
        keys: &LoginKeys,
        now: DateTime<Utc>,
        limits: &LoginLimits,
    ) -> anyhow::Result<Option<Duration>> {
        let wait_ms: i64 = self
            .login_script
            .evalsha_with_reload(
                self.connected()?,
                vec![
                    self.counter_key(&keys.account),
                    self.counter_key(&keys.client),
                    self.counter_key(&keys.known),
                ],
                vec![
                    now.timestamp_millis().to_string(),
                    limits.client.free.to_string(),
                    limits.account.free.to_string(),
                    ms(limits.client.delays.base),
                    ms(limits.client.delays.max),
                    ms(limits.client.window),
                ],
            )
            .await
            .context("count login attempt")?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))))
    }

    async fn login_succeeded(
        &self,
        keys: &LoginKeys,
        _now: DateTime<Utc>,
        known_for: Duration,
    ) -> anyhow::Result<()> {
        let _: i64 = self
            .login_succeeded_script
            .evalsha_with_reload(
                self.connected()?,
                vec![
                    self.counter_key(&keys.client),
                    self.counter_key(&keys.known),
                    self.counter_key(&keys.account),
                ],
                vec![ms(known_for)],
            )
            .await
            .context("record a successful login")?;
        Ok(())
    }

    async fn clear_login_attempts(&self, keys: &LoginKeys) -> anyhow::Result<()> {
        let _: i64 = self
            .connected()?
            .del(vec![
                self.counter_key(&keys.account),
                self.counter_key(&keys.client),
            ])
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

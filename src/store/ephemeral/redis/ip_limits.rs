//! Per-client-IP budgets in Redis: GCRA, every bucket of a request checked and
//! updated by one script, so a check is one round trip and concurrent instances
//! share one budget.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::RedisStore;
use crate::store::ephemeral::{IpBucket, IpLimitStore};

/// GCRA over several buckets, all or none (as governor's `check_key`, with its
/// tolerance of `interval * (burst - 1)`). Each key holds its theoretical arrival
/// time (TAT, Unix ms) and expires when the bucket is full again. The time is the
/// caller's (`now`), never Redis `TIME`. Returns `{0, 0}` to go ahead, or
/// `{i, wait_ms}` for the bucket (1-based) with the longest wait.
/// KEYS the buckets; ARGV now_ms, then interval_ms and burst of each bucket in turn.
pub(super) const TAKE_IP_BUDGET: &str = r#"
local now = tonumber(ARGV[1])
local tats = {}
local worst, worst_wait = 0, 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local tau = interval * (tonumber(ARGV[2 * i + 1]) - 1)
  local tat = tonumber(redis.call('GET', key) or now) or now
  if tat < now then tat = now end
  tats[i] = tat
  local wait = tat - tau - now
  if wait > worst_wait then worst, worst_wait = i, wait end
end
if worst > 0 then return {worst, worst_wait} end
for i, key in ipairs(KEYS) do
  local next = tats[i] + tonumber(ARGV[2 * i])
  redis.call('SET', key, string.format('%d', next), 'PX', string.format('%d', next - now))
end
return {0, 0}
"#;

#[async_trait::async_trait]
impl IpLimitStore for RedisStore {
    async fn take_ip_budget(
        &self,
        buckets: &[IpBucket],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<(usize, Duration)>> {
        let keys: Vec<String> = buckets.iter().map(|b| self.counter_key(&b.key)).collect();
        let mut args = vec![now.timestamp_millis().to_string()];
        for bucket in buckets {
            // Whole ms, rounded up: at most a millisecond stricter than the quota.
            let interval = bucket.interval.as_micros().div_ceil(1000).max(1);
            args.push(interval.to_string());
            args.push(bucket.burst.max(1).to_string());
        }
        let answer: Vec<i64> = self
            .ip_limit_script
            .evalsha_with_reload(self.connected()?, keys, args)
            .await
            .context("take per-IP budget")?;
        match answer.as_slice() {
            [0, _] => Ok(None),
            [i, wait] => {
                let index = usize::try_from(*i - 1).context("bucket index")?;
                anyhow::ensure!(index < buckets.len(), "bucket index out of range");
                let wait = Duration::from_millis(u64::try_from(*wait).unwrap_or(0));
                Ok(Some((index, wait)))
            }
            other => anyhow::bail!("unexpected answer from the per-IP script: {other:?}"),
        }
    }
}

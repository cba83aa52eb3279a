//! Per-client-IP budgets in Redis: GCRA, every bucket of a request checked and
//! updated by one script, so a check is one round trip and concurrent instances
//! share one budget. One call may count several requests of one client at once (those
//! an instance gathered while its previous call was on the way).

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::RedisStore;
use crate::store::ephemeral::{IpBucket, IpBudget, IpLimitStore};

/// GCRA over several buckets for `n` requests in a row, each all or none (as
/// governor's `check_key`, with its tolerance of `interval * (burst - 1)`): the first
/// `allowed` go ahead, the rest are refused and cost nothing. Each key holds its
/// theoretical arrival time (TAT, Unix ms) and expires when the bucket is full again.
/// The time is the caller's (`now`), never Redis `TIME`. Returns `{allowed, 0, 0}`
/// when all go ahead, else `{allowed, i, wait_ms}` for the bucket (1-based) with the
/// longest wait after the allowed ones.
/// KEYS the buckets; ARGV now_ms, n, then interval_ms and burst of each bucket in turn.
pub(super) const TAKE_IP_BUDGET: &str = r#"
local now, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local tats, intervals, taus = {}, {}, {}
local allowed = n
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i + 1])
  local tau = interval * (tonumber(ARGV[2 * i + 2]) - 1)
  local tat = tonumber(redis.call('GET', key) or now) or now
  if tat < now then tat = now end
  tats[i], intervals[i], taus[i] = tat, interval, tau
  local room = now + tau - tat
  local fit = 0
  if room >= 0 then fit = math.floor(room / interval) + 1 end
  if fit < allowed then allowed = fit end
end
local worst, worst_wait = 0, 0
for i, key in ipairs(KEYS) do
  local tat = tats[i] + allowed * intervals[i]
  if allowed > 0 then
    redis.call('SET', key, string.format('%d', tat), 'PX', string.format('%d', tat - now))
  end
  if allowed < n then
    local wait = tat - taus[i] - now
    if wait > worst_wait then worst, worst_wait = i, wait end
  end
end
return {allowed, worst, worst_wait}
"#;

#[async_trait::async_trait]
impl IpLimitStore for RedisStore {
    async fn take_ip_budget(
        &self,
        buckets: &[IpBucket],
        requests: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<IpBudget> {
        let keys: Vec<String> = buckets.iter().map(|b| self.counter_key(&b.key)).collect();
        let mut args = vec![now.timestamp_millis().to_string(), requests.to_string()];
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
        let [allowed, worst, wait] = answer.as_slice() else {
            anyhow::bail!("unexpected answer from the per-IP script: {answer:?}");
        };
        let allowed = u32::try_from(*allowed)
            .ok()
            .filter(|&a| a <= requests)
            .context("allowed count out of range")?;
        let refused_by = if allowed == requests {
            None
        } else {
            let index = usize::try_from(*worst - 1).context("bucket index")?;
            anyhow::ensure!(index < buckets.len(), "bucket index out of range");
            let wait = Duration::from_millis(u64::try_from(*wait).unwrap_or(0));
            Some((index, wait))
        };
        Ok(IpBudget {
            allowed,
            refused_by,
        })
    }
}

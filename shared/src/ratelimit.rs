//! Rate limits shared through Redis, so they hold across Lambda containers
//! and processes: GCRA (the generic cell rate algorithm) in one atomic Lua
//! script, using Redis' own clock so callers' clocks do not matter.
//!
//! A limit of `max` per `window` allows a burst of `max` and then one more
//! every `window / max`.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::error::{AppError, AppResult};
use crate::kv::Kv;

/// KEYS: the buckets; ARGV: per bucket its emission interval and window
/// (ms). Takes a cell from every bucket if all allow it, atomically.
/// Returns {allowed (1|0), retry_after_ms} (the longest wait of the
/// buckets that refuse).
const GCRA: &str = r#"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local wait = 0
local new_tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  new_tats[i] = tat + interval
  local allow_at = new_tats[i] - window
  if allow_at > now and allow_at - now > wait then wait = allow_at - now end
end
if wait > 0 then
  return {0, wait}
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], new_tats[i], 'PX', math.ceil(new_tats[i] - now))
end
return {1, 0}
"#;

/// KEYS[1]: the bucket, ARGV[1]: its emission interval (ms). Gives back one
/// cell taken earlier.
const REFUND: &str = r#"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
local new_tat = tat - tonumber(ARGV[1])
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
end
return 1
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after: Duration },
}

impl Decision {
    /// `Err(429)` when limited.
    pub fn check(self) -> AppResult<()> {
        match self {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after } => Err(AppError::TooManyRequests {
                // Round up: retrying a fraction of a second early is refused again.
                retry_after_secs: retry_after.as_millis().div_ceil(1000).max(1) as u64,
            }),
        }
    }
}

#[derive(Clone)]
pub struct RateLimiter {
    kv: Kv,
}

// Hashed at first use, not at every cold start (SHA-1 of each script, about
// a fortieth of a function's init).
static GCRA_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(GCRA));
static REFUND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REFUND));

impl Limit {
    fn interval_ms(self) -> u64 {
        (self.window_ms() / u64::from(self.max.max(1))).max(1)
    }

    fn window_ms(self) -> u64 {
        self.window.as_millis().max(1) as u64
    }
}

impl RateLimiter {
    pub fn new(kv: Kv) -> RateLimiter {
        RateLimiter { kv }
    }

    /// Takes one cell from `bucket` if the limit allows it.
    pub async fn consume(&self, bucket: &str, limit: Limit) -> AppResult<Decision> {
        self.consume_all(&[(bucket, limit)]).await
    }

    /// Takes one cell from every bucket if all of them allow it, else none:
    /// one atomic step, so parallel callers cannot all pass a check that
    /// only one of them should.
    pub async fn consume_all(&self, buckets: &[(&str, Limit)]) -> AppResult<Decision> {
        if let Some((_, closed)) = buckets.iter().find(|(_, limit)| limit.max == 0) {
            return Ok(Decision::Limited { retry_after: closed.window });
        }
        let keys: Vec<String> = buckets.iter().map(|(bucket, _)| self.kv.key(&format!("rl:{bucket}"))).collect();
        let args: Vec<String> = buckets
            .iter()
            .flat_map(|(_, limit)| [limit.interval_ms().to_string(), limit.window_ms().to_string()])
            .collect();
        let (allowed, retry_after_ms): (i64, i64) = self.kv.invoke(&GCRA_SCRIPT, &keys, &args).await?;
        Ok(if allowed == 1 {
            Decision::Allowed
        } else {
            Decision::Limited { retry_after: Duration::from_millis(retry_after_ms.max(0) as u64) }
        })
    }

    /// Gives back one cell taken from `bucket` (an attempt that turned out
    /// to be no failure).
    pub async fn refund(&self, bucket: &str, limit: Limit) -> AppResult<()> {
        let keys = [self.kv.key(&format!("rl:{bucket}"))];
        let args = [limit.interval_ms().to_string()];
        let _: i64 = self.kv.invoke(&REFUND_SCRIPT, &keys, &args).await?;
        Ok(())
    }

    /// Forgets a bucket (e.g. an account's failed logins after a success).
    pub async fn reset(&self, bucket: &str) -> AppResult<()> {
        let _: () = self.kv.query(redis::cmd("DEL").arg(self.kv.key(&format!("rl:{bucket}")))).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let err = Decision::Limited { retry_after: Duration::from_millis(1200) }.check().unwrap_err();
        assert!(matches!(err, AppError::TooManyRequests { retry_after_secs: 2 }));
        assert!(Decision::Allowed.check().is_ok());
    }
}

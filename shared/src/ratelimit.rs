//! Rate limits shared through Redis, so they hold across Lambda containers
//! and processes: GCRA (the generic cell rate algorithm) in one atomic Lua
//! script, using Redis' own clock so callers' clocks do not matter.
//!
//! A limit of `max` per `window` allows a burst of `max` and then one more
//! every `window / max`.

use std::time::Duration;

use redis::Script;

use crate::error::{AppError, AppResult};
use crate::kv::Kv;

/// KEYS[1]: the bucket. ARGV: emission interval (ms), window (ms), mode
/// ("consume" takes a cell if allowed; "peek" only asks).
/// Returns {allowed (1|0), retry_after_ms}.
const GCRA: &str = r#"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if allow_at > now then
  return {0, allow_at - now}
end
if ARGV[3] == 'consume' then
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
end
return {1, 0}
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
    script: Script,
}

impl RateLimiter {
    pub fn new(kv: Kv) -> RateLimiter {
        RateLimiter { kv, script: Script::new(GCRA) }
    }

    /// Takes one cell from `bucket` if the limit allows it.
    pub async fn consume(&self, bucket: &str, limit: Limit) -> AppResult<Decision> {
        self.run(bucket, limit, "consume").await
    }

    /// Whether one more cell would be allowed, without taking it.
    pub async fn peek(&self, bucket: &str, limit: Limit) -> AppResult<Decision> {
        self.run(bucket, limit, "peek").await
    }

    /// Forgets a bucket (e.g. an account's failed logins after a success).
    pub async fn reset(&self, bucket: &str) -> AppResult<()> {
        let _: () = self.kv.query(redis::cmd("DEL").arg(self.kv.key(&format!("rl:{bucket}")))).await?;
        Ok(())
    }

    async fn run(&self, bucket: &str, limit: Limit, mode: &str) -> AppResult<Decision> {
        if limit.max == 0 {
            return Ok(Decision::Limited { retry_after: limit.window });
        }
        let window_ms = limit.window.as_millis().max(1) as u64;
        let interval_ms = (window_ms / u64::from(limit.max)).max(1);
        let keys = [self.kv.key(&format!("rl:{bucket}"))];
        let args = [interval_ms.to_string(), window_ms.to_string(), mode.to_string()];
        let (allowed, retry_after_ms): (i64, i64) = self.kv.invoke(&self.script, &keys, &args).await?;
        Ok(if allowed == 1 {
            Decision::Allowed
        } else {
            Decision::Limited { retry_after: Duration::from_millis(retry_after_ms.max(0) as u64) }
        })
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

//! The job state machine (one transition function) and the retry backoff.
//!
//! ```text
//!   PENDING ──claim──▶ RUNNING ──succeed──▶ SUCCEEDED
//!      ▲                 │  │
//!      │ retry (admin)   │  └─fail (retryable, attempts left)─▶ RETRYING ──claim──▶ RUNNING
//!      │                 │  └─lease expired (attempts left)───▶ RETRYING
//!     DEAD ◀─────────────┘ fail (permanent, or attempts used up), lease expired (none left)
//! ```

use std::time::Duration;

use super::JobStatus;
use crate::types::Named;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    Claim,
    Succeed,
    Fail {
        retryable: bool,
        attempts_left: bool,
    },
    LeaseExpired {
        attempts_left: bool,
    },
    /// An operator sends a dead job back.
    Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from:?} job cannot take {event:?}")]
pub struct InvalidJobTransition {
    pub from: JobStatus,
    pub event: JobEvent,
}

impl JobStatus {
    pub fn transition(self, event: JobEvent) -> Result<JobStatus, InvalidJobTransition> {
        use JobEvent as E;
        use JobStatus as S;
        match (self, event) {
            (S::Pending | S::Retrying, E::Claim) => Ok(S::Running),
            (S::Running, E::Succeed) => Ok(S::Succeeded),
            (S::Running, E::Fail { retryable: true, attempts_left: true }) => Ok(S::Retrying),
            (S::Running, E::Fail { .. }) => Ok(S::Dead),
            (S::Running, E::LeaseExpired { attempts_left: true }) => Ok(S::Retrying),
            (S::Running, E::LeaseExpired { attempts_left: false }) => Ok(S::Dead),
            (S::Dead, E::Retry) => Ok(S::Pending),
            (from, event) => Err(InvalidJobTransition { from, event }),
        }
    }

    /// Statuses from which `event` is allowed (used to build the SQL guards,
    /// so the queries and the machine cannot disagree).
    pub fn accepting(event: JobEvent) -> Vec<&'static str> {
        JobStatus::all().iter().copied().filter(|s| s.transition(event).is_ok()).map(JobStatus::as_str).collect()
    }
}

/// Exponential backoff with "equal jitter", capped: attempt n waits between
/// half and all of `base * 2^(n-1)` (at most `cap`), so delays never shrink
/// from one attempt to the next and retrying workers do not stampede.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exponent);
    let jitter = jitter.clamp(0.0, 1.0);
    // Jitter first, cap last: the cap is a hard ceiling and growth stays monotone.
    full.mul_f64(0.5 + 0.5 * jitter).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobEvent as E;
    use JobStatus as S;

    #[test]
    fn transitions() {
        assert_eq!(S::Pending.transition(E::Claim), Ok(S::Running));
        assert_eq!(S::Retrying.transition(E::Claim), Ok(S::Running));
        assert_eq!(S::Running.transition(E::Succeed), Ok(S::Succeeded));
        let fail = |retryable, attempts_left| E::Fail { retryable, attempts_left };
        assert_eq!(S::Running.transition(fail(true, true)), Ok(S::Retrying));
        assert_eq!(S::Running.transition(fail(true, false)), Ok(S::Dead));
        assert_eq!(S::Running.transition(fail(false, true)), Ok(S::Dead));
        assert_eq!(S::Running.transition(E::LeaseExpired { attempts_left: true }), Ok(S::Retrying));
        assert_eq!(S::Running.transition(E::LeaseExpired { attempts_left: false }), Ok(S::Dead));
        assert_eq!(S::Dead.transition(E::Retry), Ok(S::Pending));
        for s in [S::Running, S::Succeeded, S::Dead] {
            assert!(s.transition(E::Claim).is_err(), "{s:?} claimable");
        }
        for s in [S::Pending, S::Retrying, S::Running, S::Succeeded] {
            assert!(s.transition(E::Retry).is_err(), "{s:?} retryable by hand");
        }
        assert!(S::Succeeded.transition(E::Succeed).is_err());
        assert_eq!(JobStatus::accepting(E::Claim), ["PENDING", "RETRYING"]);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(5);
        let cap = Duration::from_secs(3600);
        assert_eq!(backoff(1, base, cap, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(1, base, cap, 0.0), Duration::from_millis(2500));
        assert_eq!(backoff(4, base, cap, 1.0), Duration::from_secs(40));
        assert_eq!(backoff(30, base, cap, 1.0), cap);
        assert_eq!(backoff(u32::MAX, base, cap, 1.0), cap);
        // The longest wait of attempt n never exceeds the shortest of n+1.
        for n in 1..12 {
            assert!(backoff(n, base, cap, 1.0) <= backoff(n + 1, base, cap, 0.0), "attempt {n}");
        }
    }
}

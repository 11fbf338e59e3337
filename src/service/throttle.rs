//! Guessing second-factor codes is throttled per account: after a few consecutive wrong codes
//! (login, verify or disable) the account answers 429 with `Retry-After` for a growing time,
//! whatever code is sent. A right code resets the run. A 6-digit code has a million values; at
//! five tries per lock, doubling from 30 s to 15 min, an attacker gets a few hundred a day.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::UnixTime;
use crate::error::Error;

/// Wrong codes allowed in a row before the account locks.
pub const FREE_FAILURES: u32 = 5;
const FIRST_LOCK_SECS: i64 = 30;
const MAX_LOCK_SECS: i64 = 900;

#[derive(Debug, Default, Clone, Copy)]
struct Run {
    failures: u32,
    locked_until: UnixTime,
}

/// Consecutive second-factor failures per user, in memory.
#[derive(Debug, Default)]
pub struct CodeThrottle {
    runs: Mutex<HashMap<String, Run>>,
}

impl CodeThrottle {
    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Run>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// 429 while the user is locked.
    pub fn check(&self, user_id: &str, now: UnixTime) -> Result<(), Error> {
        match self.runs().get(user_id) {
            Some(run) if run.locked_until > now => Err(Error::RateLimited {
                retry_after: Duration::from_secs(
                    u64::try_from(run.locked_until - now).unwrap_or(1),
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Count a wrong code; from the `FREE_FAILURES`th on, lock for a doubling time.
    pub fn fail(&self, user_id: &str, now: UnixTime) {
        let mut runs = self.runs();
        let run = runs.entry(user_id.to_string()).or_default();
        run.failures = run.failures.saturating_add(1);
        if run.failures >= FREE_FAILURES {
            let doublings = (run.failures - FREE_FAILURES).min(10);
            let secs = (FIRST_LOCK_SECS << doublings).min(MAX_LOCK_SECS);
            run.locked_until = now + secs;
        }
        tracing::info!(user_id, failures = run.failures, "wrong second-factor code");
    }

    /// A right code ends the run.
    pub fn succeed(&self, user_id: &str) {
        self.runs().remove(user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_a_run_of_failures_with_growing_delays() {
        let t = CodeThrottle::default();
        for _ in 0..FREE_FAILURES - 1 {
            t.fail("u", 100);
            assert!(t.check("u", 100).is_ok());
        }
        t.fail("u", 100);
        assert!(
            matches!(t.check("u", 100), Err(Error::RateLimited { retry_after }) if retry_after.as_secs() == 30)
        );
        assert!(t.check("u", 130).is_ok(), "the lock ends");
        t.fail("u", 130);
        assert!(
            matches!(t.check("u", 130), Err(Error::RateLimited { retry_after }) if retry_after.as_secs() == 60)
        );
        assert!(t.check("other", 130).is_ok(), "per account");
        t.succeed("u");
        assert!(t.check("u", 131).is_ok());
    }

    #[test]
    fn the_lock_is_capped() {
        let t = CodeThrottle::default();
        for _ in 0..40 {
            t.fail("u", 0);
        }
        assert!(
            matches!(t.check("u", 0), Err(Error::RateLimited { retry_after }) if retry_after.as_secs() == 900)
        );
    }
}

//! Per-account lockout: a run of consecutive unsuccessful authentication attempts (passwords at
//! login, second-factor codes, the password confirming 2FA changes) that only a success resets.
//! Every attempt is counted when it starts, under one lock, so parallel guesses cannot slip past
//! the limit while earlier ones are still being checked. From the fifth attempt in a run the
//! account locks for 30 s, doubling with each further attempt up to an hour; a locked account
//! answers 429 with `Retry-After` to every login, whatever password or code it carries, so the
//! lock reveals nothing. Once saturated that is 24 guesses a day, and the lock always ends, so
//! the owner is never locked out for good (per-address limits keep one attacker from locking
//! many accounts cheaply).
//!
//! A lock must not become a way to keep an owner out: whoever knows an email could send one
//! wrong guess per lock period for ever. So a client network from which the account completed a
//! login in the last 30 days (the caller says whether this one is) is not refused by the lock;
//! its guesses still count, and the per-address limits still apply to it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::UnixTime;
use crate::error::Error;

/// Attempts allowed in a run before the account locks.
pub const FREE_ATTEMPTS: u32 = 5;
const FIRST_LOCK_SECS: i64 = 30;
const MAX_LOCK_SECS: i64 = 3600;

#[derive(Debug, Default, Clone, Copy)]
struct Run {
    attempts: u32,
    locked_until: UnixTime,
}

/// Runs of unsuccessful attempts per user, in memory.
#[derive(Debug, Default)]
pub struct AccountLock {
    runs: Mutex<HashMap<String, Run>>,
}

impl AccountLock {
    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Run>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start an attempt: 429 while locked, unless it comes from a `known` network; otherwise
    /// it is counted now, as if it will fail, and `succeed` takes it back.
    pub fn begin(&self, user_id: &str, now: UnixTime, known: bool) -> Result<bool, Error> {
        let mut runs = self.runs();
        let run = runs.entry(user_id.to_string()).or_default();
        attempt(run, user_id, now, known)
    }

    /// Whether the account is locked at `now` (for networks it never logged in from).
    pub fn is_locked(&self, user_id: &str, now: UnixTime) -> bool {
        self.runs()
            .get(user_id)
            .is_some_and(|run| run.locked_until > now)
    }

    /// A success ends the run.
    pub fn succeed(&self, user_id: &str) {
        self.runs().remove(user_id);
    }

    /// Take back an attempt that turned out not to be a failure (a right password with the code
    /// still to come).
    pub fn undo(&self, user_id: &str) {
        if let Some(run) = self.runs().get_mut(user_id) {
            undo(run);
        }
    }
}

/// One attempt of a run: 429 while locked (unless from a `known` network), otherwise counted;
/// `Ok(true)` when it is the one that locks. One rule for the memory of one instance and for
/// the state several instances share.
fn attempt(run: &mut Run, user_id: &str, now: UnixTime, known: bool) -> Result<bool, Error> {
    if !known {
        locked(run, now).inspect_err(|_| {
            tracing::info!(limit = "account_lock", user_id = %user_id, "rate limited");
        })?;
    }
    run.attempts = run.attempts.saturating_add(1);
    let mut locks = false;
    if run.attempts >= FREE_ATTEMPTS {
        let doublings = (run.attempts - FREE_ATTEMPTS).min(10);
        let until = now + (FIRST_LOCK_SECS << doublings).min(MAX_LOCK_SECS);
        if run.locked_until <= now {
            locks = true;
            tracing::warn!(user_id = %user_id, attempts = run.attempts, lock_secs = until - now, "account locked");
        }
        run.locked_until = until;
    }
    Ok(locks)
}

/// Take back an attempt that was no failure, unless the run already locked.
fn undo(run: &mut Run) {
    if run.attempts < FREE_ATTEMPTS {
        run.attempts = run.attempts.saturating_sub(1);
    }
}

/// The same rules over a run several instances share, kept as bytes in the store: each takes
/// the run's bytes (none for a fresh one) and gives back the bytes to keep.
pub mod shared {
    use super::{attempt, Run, UnixTime};
    use crate::error::Error;

    fn read(bytes: Option<&[u8]>) -> Run {
        let Some(b) = bytes.filter(|b| b.len() == 12) else {
            return Run::default();
        };
        let mut attempts = [0u8; 4];
        let mut until = [0u8; 8];
        attempts.copy_from_slice(&b[..4]);
        until.copy_from_slice(&b[4..]);
        Run {
            attempts: u32::from_be_bytes(attempts),
            locked_until: i64::from_be_bytes(until),
        }
    }

    fn write(run: &Run) -> Vec<u8> {
        let mut out = run.attempts.to_be_bytes().to_vec();
        out.extend_from_slice(&run.locked_until.to_be_bytes());
        out
    }

    /// `AccountLock::begin` on shared bytes.
    pub fn begin(
        bytes: Option<&[u8]>,
        user_id: &str,
        now: UnixTime,
        known: bool,
    ) -> (Vec<u8>, Result<bool, Error>) {
        let mut run = read(bytes);
        let outcome = attempt(&mut run, user_id, now, known);
        (write(&run), outcome)
    }

    /// `AccountLock::undo` on shared bytes.
    pub fn undo(bytes: Option<&[u8]>) -> Vec<u8> {
        let mut run = read(bytes);
        super::undo(&mut run);
        write(&run)
    }

    /// Whether the shared run is locked at `now`.
    pub fn is_locked(bytes: Option<&[u8]>, now: UnixTime) -> bool {
        read(bytes).locked_until > now
    }
}

fn locked(run: &Run, now: UnixTime) -> Result<(), Error> {
    if run.locked_until > now {
        let secs = u64::try_from(run.locked_until - now).unwrap_or(1);
        return Err(Error::RateLimited {
            retry_after: Duration::from_secs(secs),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(r: Result<(), Error>) -> Option<u64> {
        match r {
            Err(Error::RateLimited { retry_after }) => Some(retry_after.as_secs()),
            _ => None,
        }
    }

    /// How long the lock has left, as a stranger would be told.
    fn check(t: &AccountLock, user: &str, now: UnixTime) -> Result<(), Error> {
        match t.runs().get(user) {
            Some(run) => locked(run, now),
            None => Ok(()),
        }
    }

    #[test]
    fn attempts_count_when_they_start_and_lock_with_growing_delays() {
        let t = AccountLock::default();
        for _ in 0..FREE_ATTEMPTS {
            assert!(t.begin("u", 100, false).is_ok());
        }
        assert_eq!(
            retry(t.begin("u", 100, false).map(drop)),
            Some(30),
            "locked after the fifth"
        );
        assert_eq!(retry(check(&t, "u", 100)), Some(30));
        assert!(t.begin("u", 130, false).is_ok(), "the lock ends");
        assert_eq!(
            retry(check(&t, "u", 130)),
            Some(60),
            "and the next one doubles"
        );
        assert!(check(&t, "other", 130).is_ok(), "per account");
        t.succeed("u");
        assert!(t.begin("u", 131, false).is_ok());
    }

    #[test]
    fn a_known_network_is_not_refused_by_the_lock_but_its_guesses_count() {
        let t = AccountLock::default();
        for _ in 0..FREE_ATTEMPTS {
            assert!(t.begin("u", 100, false).is_ok());
        }
        assert!(t.begin("u", 100, false).is_err(), "a stranger is refused");
        assert!(
            t.begin("u", 100, true).is_ok(),
            "the owner's network is not"
        );
        assert_eq!(
            retry(check(&t, "u", 100)),
            Some(60),
            "and its wrong guess made the lock longer"
        );
        t.succeed("u");
        assert!(t.begin("u", 100, false).is_ok(), "its success ends the run");
    }

    #[test]
    fn the_lock_is_capped() {
        let t = AccountLock::default();
        let mut now = 0;
        for _ in 0..25 {
            assert!(
                t.begin("u", now, false).is_ok(),
                "allowed once the lock has passed"
            );
            now += i64::try_from(retry(check(&t, "u", now)).unwrap_or(0)).expect("small");
        }
        t.begin("u", now, false).expect("allowed");
        assert_eq!(retry(check(&t, "u", now)), Some(3600));
    }
}

//! Password hashing with scrypt (PHC strings), on a bounded pool that never runs on async workers.
//!
//! Each hash at the default cost takes ~400 ms and 128 MiB, so an unbounded pool would let a
//! login storm take all memory. At most `max_concurrent_hashes` run at once; a request that cannot
//! get a slot within `queue_timeout` is answered 503 `overloaded` rather than left to pile up.

use std::sync::Arc;
use std::time::Duration;

use scrypt::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use scrypt::{Params, Scrypt};
use tokio::sync::Semaphore;

use crate::domain::password::Password;
use crate::secret::Secret;

use super::random;

/// Why hashing failed: every slot stayed busy for the queue timeout (the caller answers 503
/// with the wait), or something that should not fail did (a bug or damage: 500).
#[derive(Debug)]
pub enum HashError {
    /// No hashing slot came free in time.
    Busy {
        /// How long to suggest waiting.
        retry_after: Duration,
    },
    /// The hash could not be computed or read; the text is for the log only.
    Failed(String),
}

impl std::fmt::Display for HashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashError::Busy { .. } => f.write_str("every password-hashing slot is busy"),
            HashError::Failed(why) => write!(f, "password hashing: {why}"),
        }
    }
}

impl std::error::Error for HashError {}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matched.
    pub ok: bool,
    /// The stored hash used other scrypt parameters than the configured ones.
    pub needs_rehash: bool,
}

/// scrypt with fixed parameters and a bounded number of concurrent computations.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    /// Cost for backup codes: the configured one, but at most N = 2^14 (16 MiB), since a login
    /// or 2FA enable hashes up to ten of them.
    backup_params: Params,
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    /// Requests waiting for a slot right now.
    waiting: Arc<std::sync::atomic::AtomicI64>,
    /// A real hash of a random password, verified against when the email is unknown so that
    /// an unknown email costs the same time as a wrong password.
    dummy: Arc<str>,
}

impl PasswordHasher {
    /// Build the hasher; computes the dummy hash once, off the async workers.
    pub async fn new(
        log_n: u8,
        r: u32,
        p: u32,
        max_concurrent: usize,
        queue_timeout: Duration,
    ) -> Result<Self, HashError> {
        let params = Params::new(log_n, r, p, Params::RECOMMENDED_LEN)
            .map_err(|e| HashError::Failed(format!("scrypt parameters: {e}")))?;
        let dummy_pw = Password::new(random::token());
        let dummy = run_blocking(move || hash_with(&params, &dummy_pw)).await??;
        let backup_params = Params::new(log_n.min(14), r, p, Params::RECOMMENDED_LEN)
            .map_err(|e| HashError::Failed(format!("scrypt parameters: {e}")))?;
        Ok(Self {
            params,
            backup_params,
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            waiting: Arc::default(),
            queue_timeout,
            dummy: dummy.into(),
        })
    }

    /// Hash a new password into a PHC string.
    pub async fn hash(&self, password: Password) -> Result<Secret, HashError> {
        let params = self.params;
        self.on_pool(move || hash_with(&params, &password).map(Secret::new))
            .await?
    }

    /// Check `password` against `stored`, or against the dummy hash when there is no account,
    /// so both cases spend one hash. `None` never verifies.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<Secret>,
    ) -> Result<Verified, HashError> {
        let params = self.params;
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| Secret::new(self.dummy.to_string()));
        let v = self
            .on_pool(move || verify_with(&params, &password, phc.expose()))
            .await??;
        Ok(Verified {
            ok: v.ok && known,
            needs_rehash: v.needs_rehash && known,
        })
    }

    /// Digests of backup codes (already in canonical form) under `salt`, on the pool.
    pub async fn backup_digests(
        &self,
        canonical: Vec<String>,
        salt: [u8; 16],
    ) -> Result<Vec<[u8; 32]>, HashError> {
        let params = self.backup_params;
        self.on_pool(move || {
            canonical
                .iter()
                .map(|c| super::backup_codes::digest(c, &salt, &params))
                .collect()
        })
        .await
    }

    /// Requests waiting for a hashing slot right now.
    pub fn queue_depth(&self) -> i64 {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn on_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let waiting = Waiting::new(&self.waiting);
        let acquired =
            tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await;
        drop(waiting);
        let permit = acquired
            .map_err(|_| HashError::Busy {
                retry_after: Duration::from_secs(2),
            })?
            .map_err(|_| HashError::Failed("hashing pool closed".into()))?;
        run_blocking(move || {
            let _slot = permit;
            work()
        })
        .await
    }
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    crate::blocking::run(work)
        .await
        .map_err(|_| HashError::Failed("blocking task cancelled".into()))
}

/// Counts a request as waiting for a slot until dropped, also when its future is dropped
/// because the client went away.
struct Waiting<'a>(&'a std::sync::atomic::AtomicI64);

impl<'a> Waiting<'a> {
    fn new(count: &'a std::sync::atomic::AtomicI64) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Hash synchronously with a fresh 128-bit salt.
pub fn hash_with(params: &Params, password: &Password) -> Result<String, HashError> {
    let salt = SaltString::encode_b64(&random::bytes::<16>())
        .map_err(|e| HashError::Failed(format!("salt: {e}")))?;
    Scrypt
        .hash_password_customized(password.expose().as_bytes(), None, None, *params, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Failed(format!("scrypt: {e}")))
}

/// Verify synchronously; also reports whether the stored parameters differ from `params`.
/// A stored hash that is not a PHC string is damage, an error rather than a wrong password.
pub fn verify_with(params: &Params, password: &Password, phc: &str) -> Result<Verified, HashError> {
    let parsed = PasswordHash::new(phc)
        .map_err(|_| HashError::Failed("stored password hash is not a PHC string".into()))?;
    let ok = Scrypt
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_ok();
    let stored = Params::try_from(&parsed).ok();
    let needs_rehash = stored
        .is_none_or(|s| (s.log_n(), s.r(), s.p()) != (params.log_n(), params.r(), params.p()));
    Ok(Verified { ok, needs_rehash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(log_n: u8) -> Params {
        Params::new(log_n, 8, 1, Params::RECOMMENDED_LEN).expect("valid")
    }

    #[test]
    fn hashes_are_salted_phc_strings_that_verify() {
        let pw = Password::new("correct horse battery staple".into());
        let a = hash_with(&params(10), &pw).expect("hash");
        let b = hash_with(&params(10), &pw).expect("hash");
        assert!(a.starts_with("$scrypt$ln=10,r=8,p=1$"), "{a}");
        assert_ne!(a, b, "salts differ");
        assert_eq!(
            verify_with(&params(10), &pw, &a).expect("verifies"),
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        let wrong = Password::new("correct horse battery stapl".into());
        assert!(!verify_with(&params(10), &wrong, &a).expect("verifies").ok);
    }

    #[test]
    fn a_cost_change_asks_for_a_rehash() {
        let pw = Password::new("correct horse battery staple".into());
        let old = hash_with(&params(10), &pw).expect("hash");
        let v = verify_with(&params(11), &pw, &old).expect("verifies");
        assert!(v.ok && v.needs_rehash);
    }

    #[test]
    fn garbage_hashes_are_errors_not_wrong_passwords() {
        let pw = Password::new("anything at all".into());
        assert!(verify_with(&params(10), &pw, "not a phc string").is_err());
        assert!(verify_with(&params(10), &pw, "").is_err());
    }

    #[tokio::test]
    async fn unknown_accounts_spend_a_hash_and_never_verify() {
        let h = PasswordHasher::new(10, 8, 1, 2, Duration::from_secs(5))
            .await
            .expect("hasher");
        let v = h
            .verify(Password::new("whatever-password".into()), None)
            .await
            .expect("ran");
        assert!(!v.ok && !v.needs_rehash);
    }

    #[tokio::test]
    async fn a_full_pool_answers_overloaded_after_the_wait() {
        let h = PasswordHasher::new(10, 8, 1, 1, Duration::from_millis(50))
            .await
            .expect("hasher");
        let held = h.slots.clone().acquire_owned().await.expect("slot");
        let err = h
            .hash(Password::new("another password".into()))
            .await
            .expect_err("pool is full");
        assert!(matches!(err, HashError::Busy { .. }));
        drop(held);
        assert!(h
            .hash(Password::new("another password".into()))
            .await
            .is_ok());
    }
}

//! What every request can reach: config, store, keys, the hashing pool, the clock. No globals.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::crypto::keys::Keyring;
use crate::crypto::password::PasswordHasher;
use crate::service::tokens::TokenPair;
use crate::store::Store;

/// Shared state, behind an `Arc` for the life of the server.
#[derive(Debug)]
pub struct AppState {
    /// Validated config.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Signing and verifying keys; replaced whole when the operator rotates.
    pub keys: std::sync::RwLock<Arc<Keyring>>,
    /// The bounded scrypt pool.
    pub hasher: PasswordHasher,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Serialises refresh-token rotation and guards the grace cache, so that of several
    /// concurrent refreshes of one token exactly one rotates and the others see its result.
    /// Rotation is one durable write, and redb serialises writers anyway, so this costs no
    /// throughput.
    pub refresh: tokio::sync::Mutex<GraceCache>,
    /// Set once shutdown starts, so `/readyz` tells load balancers to stop sending.
    pub draining: AtomicBool,
    /// When each API key (by hash) was last used since the last flush. Using a key only touches
    /// this map; a background task writes it in one transaction every few seconds and at
    /// shutdown, so key use never costs a write transaction.
    pub key_usage: std::sync::Mutex<HashMap<[u8; 32], UnixTime>>,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Serialises key rotations, so the keyring installed is always the one last stored.
    pub rotation: tokio::sync::Mutex<()>,
    /// Per-address token buckets.
    pub limits: crate::service::rate_limit::RateLimiter,
    /// Runs of unsuccessful authentication attempts per account.
    pub account_lock: crate::service::lockout::AccountLock,
}

/// Successor pairs handed out recently, by the SHA-256 of the token they replaced; lives for
/// `tokens.refresh_reuse_grace` and only in memory.
#[derive(Debug, Default)]
pub struct GraceCache {
    /// predecessor hash -> (successor pair, time after which it is no longer given out)
    pub entries: HashMap<[u8; 32], (TokenPair, UnixTime)>,
}

impl AppState {
    /// Now, from the injected clock.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The current keyring.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Install a new keyring built from the stored keys.
    pub fn set_keys(
        &self,
        stored: Vec<crate::store::StoredKey>,
    ) -> Result<(), crate::error::Error> {
        let ring = keyring(stored, self.config.key_keep_for())?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// Note that an API key was used now; memory only.
    pub fn note_key_use(&self, hash: [u8; 32]) {
        let now = self.now();
        self.usage().insert(hash, now);
    }

    /// The unwritten last use of each key in `hashes`, in order.
    pub fn pending_key_usage(
        &self,
        hashes: impl Iterator<Item = [u8; 32]>,
    ) -> Vec<Option<UnixTime>> {
        let usage = self.usage();
        hashes.map(|h| usage.get(&h).copied()).collect()
    }

    /// Write the pending API-key usage to the store in one transaction. Entries leave the map
    /// only once written (and only if no later use came in meanwhile), so a list running during
    /// the write still sees them, and a failed write loses nothing.
    pub async fn flush_key_usage(&self) -> Result<(), crate::store::StoreError> {
        let pending: Vec<([u8; 32], UnixTime)> =
            self.usage().iter().map(|(h, at)| (*h, *at)).collect();
        if pending.is_empty() {
            return Ok(());
        }
        self.store.record_api_key_use(pending.clone()).await?;
        let mut usage = self.usage();
        for (hash, at) in pending {
            if usage.get(&hash) == Some(&at) {
                usage.remove(&hash);
            }
        }
        Ok(())
    }

    /// The usage map; a poisoned lock still holds valid timestamps, so it is used as is.
    fn usage(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], UnixTime>> {
        self.key_usage.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The keyring of the stored keys: the newest active one signs, retired ones verify for
/// `keep_for` seconds.
pub fn keyring(
    stored: Vec<crate::store::StoredKey>,
    keep_for: i64,
) -> Result<Keyring, crate::error::Error> {
    Keyring::new(
        stored.into_iter().map(|k| (k.pair, k.retired_at)).collect(),
        keep_for,
    )
    .ok_or_else(|| crate::error::Error::Internal("no signing key".into()))
}

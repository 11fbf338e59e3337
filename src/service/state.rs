//! What every use case can reach: config, store, keys, the hashing pool, the clock, and the
//! in-memory state of the services (limits, grace cache, key usage). No globals.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::crypto::keys::Keyring;
use crate::crypto::password::PasswordHasher;
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
    /// Serialise the rotations of each refresh token (not of all of them), and the grace cache.
    pub refresh: crate::service::tokens::RefreshLocks,
    /// Set once shutdown starts, so `/readyz` tells load balancers to stop sending.
    pub draining: AtomicBool,
    /// Wakes the background tasks when shutdown starts, so they stop between two pieces of
    /// work instead of being cut off in one (a cut-off store read would keep the file open).
    pub stopping: tokio::sync::Notify,
    /// When each API key was last used since the last flush; key use never writes.
    pub key_usage: crate::service::key_usage::KeyUsage,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Serialises key rotations, so the keyring installed is always the one last stored.
    pub rotation: tokio::sync::Mutex<()>,
    /// When the keyring was last read back from a shared store (another instance may rotate).
    pub keys_reloaded_at: std::sync::atomic::AtomicI64,
    /// Token buckets per client and per account.
    pub rate_limiter: crate::service::rate_limit::RateLimiter,
    /// Access tokens whose signature was already checked.
    pub token_cache: crate::service::token_cache::TokenCache,
    /// Runs of unsuccessful authentication attempts per account.
    pub account_lock: crate::service::lockout::AccountLock,
    /// Where queued mail goes, and the wake-up call of the worker that sends it.
    pub mailer: crate::service::mail::Mailer,
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
}

impl AppState {
    /// Read the signing keys back from the store and install them: another instance sharing the
    /// database may have rotated. `on_demand` (a token with a key not loaded yet, which anyone
    /// can send): at most once a second however often it is asked for.
    pub async fn reload_keys(&self, on_demand: bool) -> Result<(), crate::error::Error> {
        use std::sync::atomic::Ordering;
        let now = self.now();
        if on_demand && self.keys_reloaded_at.swap(now, Ordering::Relaxed) == now {
            return Ok(());
        }
        let _one_at_a_time = self.rotation.lock().await;
        // A read: this runs on the bearer-check path when a token names a key not loaded yet.
        let stored = self
            .store
            .signing_keys(now, self.config.key_keep_for())
            .await?;
        let before = self.keyring().active().kid().to_string();
        self.set_keys(stored)?;
        let after = self.keyring().active().kid().to_string();
        if before != after {
            tracing::info!(kid = %after, "signing with a key another instance made");
        }
        Ok(())
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

/// Run `job` every `period`, the first time at once, until the server stops: a stop announced
/// while `job` runs ends the loop once it is done, so none of the server's background work is
/// ever cut in the middle of a store write by a stop.
pub async fn every<F, Fut>(state: Arc<AppState>, period: std::time::Duration, mut job: F)
where
    F: FnMut(Arc<AppState>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Listening before looking, so a stop announced in between is not missed.
        let stopping = state.stopping.notified();
        tokio::pin!(stopping);
        stopping.as_mut().enable();
        if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut stopping => return,
        }
        job(state.clone()).await;
    }
}

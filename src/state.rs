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
    /// Signing and verifying keys.
    pub keys: Keyring,
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
}

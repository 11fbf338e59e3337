//! When each API key was last used, kept in memory: using a key never costs a write. A
//! background task writes the buffer in one transaction every `api_keys.last_used_flush` and at
//! shutdown; lists fold in what is not written yet, so `last_used_at` is current without a write.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::clock::UnixTime;
use crate::store::{Store, StoreError};

/// Last use per key hash since the last flush.
#[derive(Debug, Default)]
pub struct KeyUsage {
    pending: Mutex<HashMap<[u8; 32], UnixTime>>,
}

impl KeyUsage {
    /// Note that the key with this hash was used at `now`.
    pub fn note(&self, hash: [u8; 32], now: UnixTime) {
        self.lock().insert(hash, now);
    }

    /// The unwritten last use of each key in `hashes`, in order.
    pub fn pending(&self, hashes: impl Iterator<Item = [u8; 32]>) -> Vec<Option<UnixTime>> {
        let pending = self.lock();
        hashes.map(|h| pending.get(&h).copied()).collect()
    }

    /// Write the buffer to `store` in one transaction. Entries leave it only once written (and
    /// only if no later use came in meanwhile), so a list running during the write still sees
    /// them, and a failed write loses nothing.
    pub async fn flush(&self, store: &Store) -> Result<(), StoreError> {
        let pending: Vec<([u8; 32], UnixTime)> =
            self.lock().iter().map(|(h, at)| (*h, *at)).collect();
        if pending.is_empty() {
            return Ok(());
        }
        store.record_api_key_use(pending.clone()).await?;
        let mut buffer = self.lock();
        for (hash, at) in pending {
            if buffer.get(&hash) == Some(&at) {
                buffer.remove(&hash);
            }
        }
        Ok(())
    }

    /// A poisoned lock still holds valid timestamps, so it is used as is.
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], UnixTime>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_use_noted_during_a_flush_is_kept_for_the_next() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = Store::open(&tmp.path().join("db.redb")).expect("open");
        let usage = KeyUsage::default();
        usage.note([1; 32], 10);
        assert_eq!(
            usage.pending([[1; 32], [2; 32]].into_iter()),
            [Some(10), None]
        );
        usage.flush(&store).await.expect("flush");
        assert_eq!(
            usage.pending([[1; 32]].into_iter()),
            [None],
            "written, so gone"
        );
        usage.note([1; 32], 20);
        assert_eq!(usage.pending([[1; 32]].into_iter()), [Some(20)]);
    }
}

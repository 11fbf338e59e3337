//! When each API key was last used, kept in memory: using a key never costs a write. A
//! background task writes the buffer in one transaction every `api_keys.last_used_flush` and at
//! shutdown; lists fold in what is not written yet, so `last_used_at` is current without a write.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::clock::UnixTime;
use crate::store::{Store, StoreError};

/// Independent locks, picked by a byte of the key's hash (itself uniform), so that concurrent
/// key checks rarely meet on one lock.
const SHARDS: usize = 16;

/// Last use per key hash since the last flush.
#[derive(Debug, Default)]
pub struct KeyUsage {
    shards: [Mutex<HashMap<[u8; 32], UnixTime>>; SHARDS],
}

impl KeyUsage {
    /// Note that the key with this hash was used at `now`.
    pub fn note(&self, hash: [u8; 32], now: UnixTime) {
        self.shard(&hash).insert(hash, now);
    }

    /// The unwritten last use of each key in `hashes`, in order.
    pub fn pending(&self, hashes: impl Iterator<Item = [u8; 32]>) -> Vec<Option<UnixTime>> {
        hashes.map(|h| self.shard(&h).get(&h).copied()).collect()
    }

    /// Write the buffer to `store` in one transaction. Entries leave it only once written (and
    /// only if no later use came in meanwhile), so a list running during the write still sees
    /// them, and a failed write loses nothing.
    pub async fn flush(&self, store: &Store) -> Result<(), StoreError> {
        let pending: Vec<([u8; 32], UnixTime)> = self
            .shards
            .iter()
            .flat_map(|s| lock(s).iter().map(|(h, at)| (*h, *at)).collect::<Vec<_>>())
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        store.record_api_key_use(pending.clone()).await?;
        for (hash, at) in pending {
            let mut shard = self.shard(&hash);
            if shard.get(&hash) == Some(&at) {
                shard.remove(&hash);
            }
        }
        Ok(())
    }

    fn shard(&self, hash: &[u8; 32]) -> MutexGuard<'_, HashMap<[u8; 32], UnixTime>> {
        lock(&self.shards[usize::from(hash[0]) % SHARDS])
    }
}

/// A poisoned lock still holds valid timestamps, so it is used as is.
fn lock(m: &Mutex<HashMap<[u8; 32], UnixTime>>) -> MutexGuard<'_, HashMap<[u8; 32], UnixTime>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

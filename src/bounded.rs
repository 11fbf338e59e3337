//! A bounded map with least-recently-used eviction, split into shards so that no one lock
//! serialises every request: each operation locks one shard briefly (never across an await) and
//! is O(1). The rate limiter and the token cache keep their entries in it.

use std::hash::{BuildHasher, Hash, RandomState};
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

/// Independent locks; a power of two well above the core count keeps contention rare.
const SHARDS: usize = 16;

/// At most `capacity` entries (rounded up to a multiple of the shard count).
#[derive(Debug)]
pub struct ShardedLru<K: Hash + Eq, V> {
    hasher: RandomState,
    shards: Box<[Mutex<LruCache<K, V>>]>,
}

impl<K: Hash + Eq, V> ShardedLru<K, V> {
    /// An empty map holding at most about `capacity` entries (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard =
            NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
        }
    }

    /// Run `f` on the entry for `key`, made with `make` if absent (evicting the shard's least
    /// recently used entry when full); the entry becomes the most recently used.
    pub fn with<R>(&self, key: K, make: impl FnOnce() -> V, f: impl FnOnce(&mut V) -> R) -> R {
        let mut shard = self.shard(&key);
        f(shard.get_or_insert_mut(key, make))
    }

    /// Run `f` on the entry for `key` if there is one.
    pub fn with_existing<R>(&self, key: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        self.shard(key).get_mut(key).map(f)
    }

    /// Insert or replace.
    pub fn put(&self, key: K, value: V) {
        self.shard(&key).put(key, value);
    }

    /// Remove and return.
    pub fn remove(&self, key: &K) -> Option<V> {
        self.shard(key).pop(key)
    }

    /// Forget every entry.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            lock(shard).clear();
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, LruCache<K, V>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        lock(&self.shards[i])
    }
}

/// A poisoned shard still holds valid entries (each operation is a single map call).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_never_grows_past_its_bound_and_keeps_what_is_used() {
        let map = ShardedLru::new(160);
        map.put(0_u32, 0_u32);
        for i in 1..100_000 {
            map.put(i, i);
            if i % 5 == 0 {
                assert_eq!(map.with_existing(&0, |v| *v), Some(0), "kept at {i}");
            }
        }
        assert!(map.len() <= 160, "{}", map.len());
        assert_eq!(map.remove(&0), Some(0));
        assert_eq!(map.with_existing(&0, |v| *v), None);
        assert_eq!(map.with(7, || 70, |v| *v), 70, "made when absent");
    }
}

//! Read-through caches of the two reads behind every bearer check — a session with its user,
//! an API key with its user — so that a warm check costs a map lookup instead of a read
//! transaction and two record decodes.
//!
//! Every cached entry carries the version its user had when the entry was read. Every write of
//! this process that changes a user, ends one of its sessions or deletes one of its keys gives
//! that user a new version once the write is durable (before the writer's caller answers), so
//! an entry read before the change no longer matches and is read again: a logout, a revoke or a
//! disable holds on the very next request. A version taken before the read and checked on use
//! also covers a read that raced the write. This works because this process is the only writer
//! of the redb file. On a database other processes write too, entries also live at most a
//! fixed short time, so what another instance changes is seen within it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::bounded::ShardedLru;
use crate::clock::UnixTime;
use crate::domain::account::Account;
use crate::domain::models::{ApiKey, Session};

// What a write touched, gathered on the writer thread while its transaction runs.
thread_local! {
    static TOUCHED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Note, inside a write transaction, that `user_id`'s cached reads go stale with it.
pub(super) fn touch(user_id: &str) {
    TOUCHED.with(|t| t.borrow_mut().push(user_id.to_string()));
}

/// Start gathering for a new transaction (whatever an aborted one left is dropped).
pub(super) fn start_gathering() {
    TOUCHED.with(|t| t.borrow_mut().clear());
}

/// The users the transaction just run touched.
pub(super) fn gathered() -> Vec<String> {
    TOUCHED.with(|t| std::mem::take(&mut *t.borrow_mut()))
}

/// A value and the user version it was read under.
#[derive(Debug)]
struct Cached<T> {
    value: Arc<T>,
    user_id: String,
    version: u64,
    read_at: std::time::Instant,
}

/// The caches, sized by `[cache] sessions` and `[cache] keys` (0 turns one off).
#[derive(Debug)]
pub(super) struct ReadCache {
    next: AtomicU64,
    versions: ShardedLru<String, u64>,
    sessions: Option<ShardedLru<String, Cached<SessionRead>>>,
    keys: Option<ShardedLru<[u8; 32], Cached<KeyRead>>>,
    /// With a database other processes write too, how long an entry may be used at most: what
    /// they change is seen within it.
    max_age: Option<std::time::Duration>,
}

/// What `session_with_user` reads.
type SessionRead = (Session, Account);
/// What `api_key_with_user` reads.
type KeyRead = (ApiKey, Account);

impl ReadCache {
    pub(super) fn new(sessions: usize, keys: usize) -> Self {
        Self {
            next: AtomicU64::new(1),
            // Every cached entry's user has a version; evicting one only makes entries miss.
            versions: ShardedLru::new((sessions + keys).max(1)),
            sessions: (sessions > 0).then(|| ShardedLru::new(sessions)),
            keys: (keys > 0).then(|| ShardedLru::new(keys)),
            max_age: None,
        }
    }

    /// Caches for a database other processes write too: entries live at most `max_age`.
    pub(super) fn shared(sessions: usize, keys: usize, max_age: std::time::Duration) -> Self {
        Self {
            max_age: Some(max_age),
            ..Self::new(sessions, keys)
        }
    }

    fn young(&self, read_at: std::time::Instant) -> bool {
        self.max_age.is_none_or(|m| read_at.elapsed() < m)
    }

    /// Where a read that may be kept starts: entries it produces must not predate this.
    pub(super) fn before(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Keep what a read started at `before` found, unless its user changed meanwhile.
    pub(super) fn keep_session(
        &self,
        id: &str,
        value: Option<(Session, Account)>,
        before: u64,
    ) -> Option<Arc<(Session, Account)>> {
        let value = Arc::new(value?);
        if let Some(cache) = &self.sessions {
            let version = self.version(&value.1.id);
            if version < before {
                cache.put(
                    id.to_string(),
                    Cached {
                        value: value.clone(),
                        user_id: value.1.id.clone(),
                        version,
                        read_at: std::time::Instant::now(),
                    },
                );
            }
        }
        Some(value)
    }

    /// Keep what a key read started at `before` found, unless its user changed meanwhile.
    pub(super) fn keep_key(
        &self,
        hash: [u8; 32],
        value: Option<(ApiKey, Account)>,
        before: u64,
    ) -> Option<Arc<(ApiKey, Account)>> {
        let value = Arc::new(value?);
        if let Some(cache) = &self.keys {
            let version = self.version(&value.1.id);
            if version < before {
                cache.put(
                    hash,
                    Cached {
                        value: value.clone(),
                        user_id: value.1.id.clone(),
                        version,
                        read_at: std::time::Instant::now(),
                    },
                );
            }
        }
        Some(value)
    }

    /// The user's current version, minted if it has none.
    fn version(&self, user_id: &str) -> u64 {
        self.versions.with(
            user_id.to_string(),
            || self.next.fetch_add(1, Ordering::Relaxed),
            |v| *v,
        )
    }

    /// Make every entry read for these users stale.
    pub(super) fn invalidate(&self, users: &[String]) {
        for user in users {
            self.versions
                .put(user.clone(), self.next.fetch_add(1, Ordering::Relaxed));
        }
    }

    /// The cached session with its user, if still current and not expired at `now`.
    pub(super) fn session(&self, id: &str, now: UnixTime) -> Option<Arc<(Session, Account)>> {
        let cache = self.sessions.as_ref()?;
        let hit = cache.with_existing(&id.to_string(), |c| {
            (c.value.clone(), c.user_id.clone(), c.version, c.read_at)
        })?;
        let (value, user, version, read_at) = hit;
        (now < value.0.expires_at && self.version(&user) == version && self.young(read_at))
            .then_some(value)
    }

    /// Read through: the version is taken before `read` runs, so a write that lands during the
    /// read leaves the entry stale rather than wrong.
    pub(super) fn read_session<E>(
        &self,
        id: &str,
        user_of: impl FnOnce() -> Result<Option<(Session, Account)>, E>,
    ) -> Result<Option<Arc<(Session, Account)>>, E> {
        // The user is known only after the read; its version is then checked against the one
        // it had before, through the global counter: any bump in between makes a miss later.
        let before = self.before();
        Ok(self.keep_session(id, user_of()?, before))
    }

    /// The cached key with its user, if still current and not expired at `now`.
    pub(super) fn key(&self, hash: &[u8; 32], now: UnixTime) -> Option<Arc<(ApiKey, Account)>> {
        let cache = self.keys.as_ref()?;
        let (value, user, version, read_at) = cache.with_existing(hash, |c| {
            (c.value.clone(), c.user_id.clone(), c.version, c.read_at)
        })?;
        (now < value.0.expires_at && self.version(&user) == version && self.young(read_at))
            .then_some(value)
    }

    /// Read through, as `read_session`.
    pub(super) fn read_key<E>(
        &self,
        hash: [u8; 32],
        read: impl FnOnce() -> Result<Option<(ApiKey, Account)>, E>,
    ) -> Result<Option<Arc<(ApiKey, Account)>>, E> {
        let before = self.before();
        Ok(self.keep_key(hash, read()?, before))
    }

    /// Forget every entry.
    pub(super) fn clear(&self) {
        if let Some(c) = &self.sessions {
            c.clear();
        }
        if let Some(c) = &self.keys {
            c.clear();
        }
        // An entry read before this could otherwise be put back by a read still under way.
        self.next.fetch_add(1, Ordering::Relaxed);
        self.versions.clear();
    }

    /// Entries held now (sessions, keys).
    pub(super) fn held(&self) -> (usize, usize) {
        (
            self.sessions.as_ref().map_or(0, ShardedLru::len),
            self.keys.as_ref().map_or(0, ShardedLru::len),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str, expires_at: UnixTime) -> (Session, Account) {
        let session = Session {
            id: "ses-1".into(),
            user_id: user.into(),
            created_at: 0,
            last_used_at: 0,
            expires_at,
            auth_time: 0,
            user_agent: None,
            ip: None,
        };
        let account = Account {
            id: user.into(),
            email: "u@example.com".into(),
            name: "U".into(),
            company: None,
            plan: "free".into(),
            password_hash: crate::secret::Secret::new(String::new()),
            created_at: 0,
            email_verified_at: None,
            disabled: false,
            two_factor: Default::default(),
            login_networks: Vec::new(),
        };
        (session, account)
    }

    fn read(cache: &ReadCache, v: (Session, Account)) -> Arc<(Session, Account)> {
        cache
            .read_session("ses-1", || Ok::<_, ()>(Some(v)))
            .expect("read")
            .expect("found")
    }

    #[test]
    fn an_entry_serves_until_its_user_is_touched_or_it_expires() {
        let cache = ReadCache::new(10, 10);
        read(&cache, entry("user-1", 100));
        assert!(
            cache.session("ses-1", 0).is_none(),
            "a user's first read is not kept"
        );
        read(&cache, entry("user-1", 100));
        assert!(cache.session("ses-1", 0).is_some(), "the second is");
        assert!(cache.session("ses-1", 100).is_none(), "not once expired");
        cache.invalidate(&["user-2".into()]);
        assert!(
            cache.session("ses-1", 0).is_some(),
            "another user's write changes nothing"
        );
        cache.invalidate(&["user-1".into()]);
        assert!(
            cache.session("ses-1", 0).is_none(),
            "its user's write makes it stale"
        );
    }

    #[test]
    fn a_read_that_races_a_write_is_not_kept() {
        let cache = ReadCache::new(10, 10);
        read(&cache, entry("user-1", 100));
        // The write lands (and bumps) while the read is under way.
        cache
            .read_session("ses-1", || {
                cache.invalidate(&["user-1".into()]);
                Ok::<_, ()>(Some(entry("user-1", 100)))
            })
            .expect("read");
        assert!(cache.session("ses-1", 0).is_none());
        cache.clear();
        assert_eq!(cache.held(), (0, 0));
        let off = ReadCache::new(0, 0);
        read(&off, entry("user-1", 100));
        read(&off, entry("user-1", 100));
        assert!(off.session("ses-1", 0).is_none(), "off");
    }
}

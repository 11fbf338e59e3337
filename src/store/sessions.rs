//! Sessions and their refresh-token lineage: open, look up with the user, rotate, list, revoke.
//!
//! A session keeps the hash of its live refresh token and of the last few rotated-out ones, each
//! indexed by hash. Presenting the live one rotates it; presenting a rotated-out one is reuse
//! (RFC 9700 §4.14.2) and ends the whole session, unless it is the immediate predecessor within
//! the configured grace, which the service answers from memory without any write.

use std::sync::Arc;

use redb::{ReadableMultimapTable, ReadableTable, WriteTransaction};

use crate::clock::UnixTime;
use crate::domain::models::Session;

use crate::domain::account::Account;
use crate::domain::lineage::Presented;

use crate::domain::audit::Event;

use super::audit::append;
use super::records::{decode, decode_user, encode, SessionRecord, RECORD_VERSION};
use super::schema::{REFRESH_TOKENS, SESSIONS, SESSIONS_BY_USER_V1, USERS, USER_SESSIONS};
use super::{newest_first, Changed, RedbStore, StoreError};

/// What a new session is made of.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// `ses-` + random.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Now.
    pub now: UnixTime,
    /// Absolute end.
    pub expires_at: UnixTime,
    /// Client `User-Agent`.
    pub user_agent: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Most sessions the user may hold once this one is open; the oldest beyond it end.
    pub keep_at_most: usize,
    /// The client network the account lock will know (see `domain::net::login_network`).
    pub network: Option<String>,
    /// SHA-256 of its first refresh token.
    pub refresh_hash: [u8; 32],
}

impl NewSession {
    /// The session's record: opened now, its first refresh token live.
    pub(super) fn into_record(self) -> SessionRecord {
        SessionRecord {
            v: RECORD_VERSION,
            id: self.id,
            user_id: self.user_id,
            created_at: self.now,
            last_used_at: self.now,
            expires_at: self.expires_at,
            auth_time: self.now,
            user_agent: self.user_agent,
            ip: self.ip,
            current_hash: self.refresh_hash,
            previous_hashes: Vec::new(),
            rotated_at: self.now,
        }
    }
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was the live token; the session now has `new_hash` as its live token.
    Rotated(Session),
    /// It was the token rotated out last, within the grace; nothing changed.
    WithinGrace {
        /// The session it belongs to.
        session_id: String,
    },
    /// A rotated-out token outside the grace: the session has been ended.
    Reused {
        /// The session that was ended.
        session_id: String,
        /// Its owner.
        user_id: String,
    },
    /// Unknown, or its session has expired.
    Unknown,
}

/// Delete the user's sessions for which `doomed` says so.
pub(super) fn delete_sessions_where(
    tx: &WriteTransaction,
    user_id: &str,
    doomed: impl Fn(&SessionRecord) -> bool,
) -> Result<(), StoreError> {
    let ids: Vec<String> = {
        let index = tx.open_multimap_table(USER_SESSIONS)?;
        let mut ids = Vec::new();
        for entry in index.get(user_id)? {
            ids.push(entry?.value().2.to_string());
        }
        ids
    };
    for id in ids {
        if let Some(s) = get_session(tx, &id)? {
            if doomed(&s) {
                delete_session(tx, &s)?;
            }
        }
    }
    Ok(())
}

/// Make room for one more session of `user_id`: delete its expired sessions and, beyond
/// `keep_at_most - 1` live ones, the oldest. The index is ordered by age, so this reads only the
/// entries it deletes (and one more), whatever the number of sessions the user holds.
fn make_room(
    tx: &WriteTransaction,
    user_id: &str,
    now: UnixTime,
    keep_at_most: usize,
) -> Result<(), StoreError> {
    let doomed: Vec<String> = {
        let index = tx.open_multimap_table(USER_SESSIONS)?;
        let entries = index.get(user_id)?;
        let held = usize::try_from(entries.len()).unwrap_or(usize::MAX);
        let mut excess = (held + 1).saturating_sub(keep_at_most.max(1));
        let mut doomed = Vec::new();
        for entry in entries {
            let entry = entry?;
            let (_, expires_at, id) = entry.value();
            if excess == 0 && now < expires_at {
                break;
            }
            excess = excess.saturating_sub(1);
            doomed.push(id.to_string());
        }
        doomed
    };
    for id in doomed {
        match get_session(tx, &id)? {
            Some(s) => {
                if now < s.expires_at {
                    tracing::info!(user_id = %user_id, session_id = %s.id, "oldest session ended: the user holds the most sessions allowed");
                }
                delete_session(tx, &s)?;
            }
            None => {
                return Err(StoreError::Corrupt(format!(
                    "user_sessions points at missing session {id}"
                )))
            }
        }
    }
    Ok(())
}

/// Schema 1 to 2: index every session by its user and age.
pub(super) fn index_sessions_by_age(tx: &WriteTransaction) -> Result<(), StoreError> {
    let sessions = tx.open_table(SESSIONS)?;
    let mut index = tx.open_multimap_table(USER_SESSIONS)?;
    for row in sessions.iter()? {
        let (_, bytes) = row?;
        let s: SessionRecord = decode("sessions", bytes.value())?;
        index.insert(s.user_id.as_str(), index_entry(&s))?;
    }
    drop((sessions, index));
    tx.delete_multimap_table(SESSIONS_BY_USER_V1)?;
    Ok(())
}

fn index_entry(s: &SessionRecord) -> (i64, i64, &str) {
    (s.created_at, s.expires_at, s.id.as_str())
}

pub(super) fn insert_session(tx: &WriteTransaction, s: NewSession) -> Result<(), StoreError> {
    make_room(tx, &s.user_id, s.now, s.keep_at_most)?;
    let record = s.into_record();
    tx.open_table(REFRESH_TOKENS)?
        .insert(record.current_hash.as_slice(), record.id.as_str())?;
    tx.open_multimap_table(USER_SESSIONS)?
        .insert(record.user_id.as_str(), index_entry(&record))?;
    put_session(tx, &record)
}

fn put_session(tx: &WriteTransaction, s: &SessionRecord) -> Result<(), StoreError> {
    tx.open_table(SESSIONS)?
        .insert(s.id.as_str(), encode(s)?.as_slice())?;
    Ok(())
}

fn get_session(tx: &WriteTransaction, id: &str) -> Result<Option<SessionRecord>, StoreError> {
    let table = tx.open_table(SESSIONS)?;
    let out = match table.get(id)? {
        Some(bytes) => Some(decode("sessions", bytes.value())?),
        None => None,
    };
    Ok(out)
}

/// Delete a session with every index entry pointing at it.
fn delete_session(tx: &WriteTransaction, s: &SessionRecord) -> Result<(), StoreError> {
    super::read_cache::touch(&s.user_id);
    let mut tokens = tx.open_table(REFRESH_TOKENS)?;
    tokens.remove(s.current_hash.as_slice())?;
    for h in &s.previous_hashes {
        tokens.remove(h.as_slice())?;
    }
    tx.open_multimap_table(USER_SESSIONS)?
        .remove(s.user_id.as_str(), index_entry(s))?;
    tx.open_table(SESSIONS)?.remove(s.id.as_str())?;
    Ok(())
}

impl RedbStore {
    /// A live session together with its user: the one read behind every bearer check.
    pub async fn session_with_user(
        &self,
        session_id: String,
        now: UnixTime,
    ) -> Result<Option<Arc<(Session, Account)>>, StoreError> {
        if let Some(hit) = self.cache.session(&session_id, now) {
            return Ok(Some(hit));
        }
        self.cache.read_session(&session_id, || {
            self.read_inline(|tx| {
                let sessions = tx.open_table(SESSIONS)?;
                let Some(bytes) = sessions.get(session_id.as_str())? else {
                    return Ok(None);
                };
                let s: SessionRecord = decode("sessions", bytes.value())?;
                if now >= s.expires_at {
                    return Ok(None);
                }
                let users = tx.open_table(USERS)?;
                let Some(bytes) = users.get(s.user_id.as_str())? else {
                    return Err(StoreError::Corrupt(format!(
                        "session {} of missing user",
                        s.id
                    )));
                };
                Ok(Some((Session::from(&s), decode_user(bytes.value())?)))
            })
        })
    }

    /// Whether a refresh-token hash is known at all (live or recently rotated out). A read, so
    /// that invented tokens are refused without taking the write lock.
    pub async fn refresh_token_known(&self, hash: [u8; 32]) -> Result<bool, StoreError> {
        self.read_inline(|tx| {
            Ok(tx
                .open_table(REFRESH_TOKENS)?
                .get(hash.as_slice())?
                .is_some())
        })
    }

    /// Present a refresh token (by hash) and, if it is live, replace it with `new_hash`.
    pub async fn rotate_refresh(
        &self,
        presented: [u8; 32],
        new_hash: [u8; 32],
        now: UnixTime,
        grace_secs: i64,
        on_reuse: Event,
    ) -> Result<Rotation, StoreError> {
        self.write_if_changed(move |tx| {
            let session_id = {
                let tokens = tx.open_table(REFRESH_TOKENS)?;
                let found = tokens
                    .get(presented.as_slice())?
                    .map(|v| v.value().to_string());
                match found {
                    Some(id) => id,
                    None => return Ok((Rotation::Unknown, Changed::No)),
                }
            };
            let Some(mut s) = get_session(tx, &session_id)? else {
                return Err(StoreError::Corrupt(format!(
                    "refresh token of missing session {session_id}"
                )));
            };
            if now >= s.expires_at {
                delete_session(tx, &s)?;
                return Ok((Rotation::Unknown, Changed::Yes));
            }
            // A session that outlived a disable (a login racing it) ends here.
            if super::rows::get_user(tx, &s.user_id)?.disabled {
                delete_session(tx, &s)?;
                return Ok((Rotation::Unknown, Changed::Yes));
            }
            let mut lineage = s.lineage();
            match lineage.present(&presented, now, grace_secs) {
                Presented::Live => {}
                Presented::WithinGrace => {
                    return Ok((Rotation::WithinGrace { session_id }, Changed::No));
                }
                Presented::Reused => {
                    delete_session(tx, &s)?;
                    let (session_id, user_id) = (s.id, s.user_id);
                    append(tx, &[on_reuse.user(&user_id).session(&session_id)])?;
                    return Ok((
                        Rotation::Reused {
                            session_id,
                            user_id,
                        },
                        Changed::Yes,
                    ));
                }
            }
            let mut tokens = tx.open_table(REFRESH_TOKENS)?;
            if let Some(forgotten) = lineage.rotate(new_hash, now) {
                tokens.remove(forgotten.as_slice())?;
            }
            s.set_lineage(lineage);
            s.last_used_at = now;
            tokens.insert(new_hash.as_slice(), s.id.as_str())?;
            drop(tokens);
            put_session(tx, &s)?;
            Ok((Rotation::Rotated(Session::from(&s)), Changed::Yes))
        })
        .await
    }

    /// End a session if it belongs to `user_id`, recording `event`. Returns whether one was
    /// ended.
    pub async fn revoke_session(
        &self,
        user_id: String,
        session_id: String,
        event: Event,
    ) -> Result<bool, StoreError> {
        self.write_if_changed(move |tx| match get_session(tx, &session_id)? {
            Some(s) if s.user_id == user_id => {
                delete_session(tx, &s)?;
                append(tx, &[event])?;
                Ok((true, Changed::Yes))
            }
            _ => Ok((false, Changed::No)),
        })
        .await
    }

    /// A user's live sessions, newest first.
    pub async fn list_sessions(
        &self,
        user_id: String,
        now: UnixTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.read(move |tx| {
            let index = tx.open_multimap_table(USER_SESSIONS)?;
            let sessions = tx.open_table(SESSIONS)?;
            let mut out = Vec::new();
            for entry in index.get(user_id.as_str())? {
                let entry = entry?;
                if let Some(bytes) = sessions.get(entry.value().2)? {
                    let s: SessionRecord = decode("sessions", bytes.value())?;
                    if now < s.expires_at {
                        out.push(Session::from(&s));
                    }
                }
            }
            Ok(newest_first(out, |s| (s.created_at, s.id.clone())))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    fn new_session(id: &str, hash: u8, now: UnixTime) -> NewSession {
        NewSession {
            id: id.into(),
            user_id: "user-1".into(),
            now,
            expires_at: now + 1000,
            user_agent: None,
            ip: None,
            keep_at_most: 100,
            network: None,
            refresh_hash: [hash; 32],
        }
    }

    fn test_user() -> Account {
        Account {
            id: "user-1".into(),
            email: "u@example.com".into(),
            name: "U".into(),
            company: None,
            plan: "free".into(),
            password_hash: crate::secret::Secret::new(String::new()),
            created_at: 1,
            email_verified_at: None,
            disabled: false,
            two_factor: Default::default(),
            login_networks: Vec::new(),
        }
    }

    async fn store_with_session() -> (tempfile::TempDir, RedbStore) {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = RedbStore::open(&tmp.path().join("db.redb")).expect("open");
        let s = new_session("ses-1", 1, 100);
        store
            .write(move |tx| {
                super::super::rows::put_user(tx, &test_user())?;
                insert_session(tx, s)
            })
            .await
            .expect("insert");
        (tmp, store)
    }

    #[tokio::test]
    async fn rotation_then_reuse_ends_the_session() {
        let (_tmp, store) = store_with_session().await;
        let r = store
            .rotate_refresh([1; 32], [2; 32], 110, 0, crate::store::audit::test_event())
            .await
            .expect("rotate");
        assert!(matches!(r, Rotation::Rotated(ref s) if s.last_used_at == 110));
        assert!(matches!(
            store
                .rotate_refresh([1; 32], [3; 32], 111, 0, crate::store::audit::test_event())
                .await
                .expect("reuse"),
            Rotation::Reused { .. }
        ));
        // The successor died with the session.
        assert_eq!(
            store
                .rotate_refresh([2; 32], [4; 32], 112, 0, crate::store::audit::test_event())
                .await
                .expect("dead"),
            Rotation::Unknown
        );
        assert!(store
            .list_sessions("user-1".into(), 112)
            .await
            .expect("list")
            .is_empty());
    }

    #[tokio::test]
    async fn the_predecessor_within_grace_changes_nothing() {
        let (_tmp, store) = store_with_session().await;
        store
            .rotate_refresh([1; 32], [2; 32], 110, 10, crate::store::audit::test_event())
            .await
            .expect("rotate");
        assert_eq!(
            store
                .rotate_refresh([1; 32], [3; 32], 120, 10, crate::store::audit::test_event())
                .await
                .expect("grace"),
            Rotation::WithinGrace {
                session_id: "ses-1".into()
            }
        );
        // Past the grace it is reuse.
        assert!(matches!(
            store
                .rotate_refresh([1; 32], [3; 32], 121, 10, crate::store::audit::test_event())
                .await
                .expect("reuse"),
            Rotation::Reused { .. }
        ));
    }

    #[tokio::test]
    async fn expired_sessions_refuse_and_vanish() {
        let (_tmp, store) = store_with_session().await;
        assert_eq!(
            store
                .rotate_refresh([1; 32], [2; 32], 1100, 0, crate::store::audit::test_event())
                .await
                .expect("expired"),
            Rotation::Unknown
        );
        assert!(store
            .session_with_user("ses-1".into(), 100)
            .await
            .expect("read")
            .is_none());
    }

    #[tokio::test]
    async fn old_predecessors_are_forgotten_to_bound_storage() {
        let (_tmp, store) = store_with_session().await;
        for i in 1..=(crate::domain::lineage::REMEMBERED_PREDECESSORS as u8 + 2) {
            let r = store
                .rotate_refresh(
                    [i; 32],
                    [i + 1; 32],
                    100,
                    0,
                    crate::store::audit::test_event(),
                )
                .await
                .expect("rotate");
            assert!(matches!(r, Rotation::Rotated(_)));
        }
        // Token 1 was forgotten: unknown, and the session lives on.
        assert_eq!(
            store
                .rotate_refresh([1; 32], [99; 32], 100, 0, crate::store::audit::test_event())
                .await
                .expect("old"),
            Rotation::Unknown
        );
        assert_eq!(
            store
                .list_sessions("user-1".into(), 100)
                .await
                .expect("list")
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_new_session_prunes_the_users_expired_ones() {
        let (_tmp, store) = store_with_session().await;
        let later = new_session("ses-2", 2, 5000);
        store
            .write(move |tx| insert_session(tx, later))
            .await
            .expect("insert");
        assert_eq!(
            store
                .rotate_refresh([1; 32], [3; 32], 5000, 0, crate::store::audit::test_event())
                .await
                .expect("gone"),
            Rotation::Unknown
        );
        assert!(
            !store.refresh_token_known([1; 32]).await.expect("read"),
            "index entry removed too"
        );
        assert!(store.refresh_token_known([2; 32]).await.expect("read"));
    }

    #[tokio::test]
    async fn opening_one_session_too_many_ends_the_oldest() {
        let (_tmp, store) = store_with_session().await;
        for i in 2..=4_u8 {
            let mut next = new_session(&format!("ses-{i}"), i, 100 + i64::from(i));
            next.keep_at_most = 3;
            store
                .write(move |tx| insert_session(tx, next))
                .await
                .expect("insert");
        }
        assert!(
            !store.refresh_token_known([1; 32]).await.expect("read"),
            "the oldest ended with its refresh token"
        );
        let live = store
            .list_sessions("user-1".into(), 200)
            .await
            .expect("list");
        let ids: Vec<&str> = live.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["ses-4", "ses-3", "ses-2"]);
    }

    #[tokio::test]
    async fn a_schema_1_database_gets_its_sessions_indexed_by_age() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("db.redb");
        {
            let db = redb::Database::create(&path).expect("create");
            let tx = db.begin_write().expect("tx");
            {
                let mut meta = tx.open_table(crate::store::schema::META).expect("meta");
                meta.insert("schema_version", 1).expect("version");
                let record = SessionRecord {
                    v: RECORD_VERSION,
                    id: "ses-old".into(),
                    user_id: "user-1".into(),
                    created_at: 10,
                    last_used_at: 10,
                    expires_at: 1000,
                    auth_time: 10,
                    user_agent: None,
                    ip: None,
                    current_hash: [7; 32],
                    previous_hashes: Vec::new(),
                    rotated_at: 10,
                };
                tx.open_table(SESSIONS)
                    .expect("sessions")
                    .insert("ses-old", encode(&record).expect("encode").as_slice())
                    .expect("insert");
                tx.open_multimap_table(SESSIONS_BY_USER_V1)
                    .expect("v1 index")
                    .insert("user-1", "ses-old")
                    .expect("insert");
            }
            tx.commit().expect("commit");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let store = RedbStore::open(&path).expect("open migrates");
        assert_eq!(
            store.schema_version().await.expect("version"),
            crate::store::schema::SCHEMA_VERSION
        );
        let live = store
            .list_sessions("user-1".into(), 20)
            .await
            .expect("list");
        assert_eq!(live.len(), 1, "the session is found through the new index");
        let tx = store.db.begin_read().expect("read");
        assert!(
            tx.open_multimap_table(SESSIONS_BY_USER_V1).is_err(),
            "the old index is gone"
        );
    }

    #[tokio::test]
    async fn only_the_owner_revokes() {
        let (_tmp, store) = store_with_session().await;
        assert!(!store
            .revoke_session(
                "user-2".into(),
                "ses-1".into(),
                crate::store::audit::test_event()
            )
            .await
            .expect("other"));
        assert!(store
            .revoke_session(
                "user-1".into(),
                "ses-1".into(),
                crate::store::audit::test_event()
            )
            .await
            .expect("owner"));
        assert!(!store
            .revoke_session(
                "user-1".into(),
                "ses-1".into(),
                crate::store::audit::test_event()
            )
            .await
            .expect("gone"));
    }
}

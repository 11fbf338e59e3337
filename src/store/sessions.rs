//! Sessions and their refresh-token lineage: open, look up with the user, rotate, list, revoke.
//!
//! A session keeps the hash of its live refresh token and of the last few rotated-out ones, each
//! indexed by hash. Presenting the live one rotates it; presenting a rotated-out one is reuse
//! (RFC 9700 §4.14.2) and ends the whole session, unless it is the immediate predecessor within
//! the configured grace, which the service answers from memory without any write.

use redb::{ReadableMultimapTable, ReadableTable, WriteTransaction};

use crate::clock::UnixTime;
use crate::domain::models::Session;

use super::records::{decode, encode, SessionRecord, UserRecord, RECORD_VERSION};
use super::schema::{REFRESH_TOKENS, SESSIONS, SESSIONS_BY_USER, USERS};
use super::{newest_first, Changed, Store, StoreError};

/// How many rotated-out tokens per session still count as reuse when presented. Older ones are
/// simply unknown: their holder gets nothing either way, and the table stays bounded.
const REMEMBERED_PREDECESSORS: usize = 16;

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
    /// The client network the account lock will know (see `domain::net::login_network`).
    pub network: Option<String>,
    /// SHA-256 of its first refresh token.
    pub refresh_hash: [u8; 32],
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
        let index = tx.open_multimap_table(SESSIONS_BY_USER)?;
        let mut ids = Vec::new();
        for id in index.get(user_id)? {
            ids.push(id?.value().to_string());
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

/// Delete the user's expired sessions; run whenever the user opens a new one, so sessions that
/// are never refreshed again do not pile up.
fn prune_expired(tx: &WriteTransaction, user_id: &str, now: UnixTime) -> Result<(), StoreError> {
    delete_sessions_where(tx, user_id, |s| now >= s.expires_at)
}

pub(super) fn insert_session(tx: &WriteTransaction, s: NewSession) -> Result<(), StoreError> {
    prune_expired(tx, &s.user_id, s.now)?;
    let record = SessionRecord {
        v: RECORD_VERSION,
        id: s.id,
        user_id: s.user_id,
        created_at: s.now,
        last_used_at: s.now,
        expires_at: s.expires_at,
        auth_time: s.now,
        user_agent: s.user_agent,
        ip: s.ip,
        current_hash: s.refresh_hash,
        previous_hashes: Vec::new(),
        rotated_at: s.now,
    };
    tx.open_table(REFRESH_TOKENS)?
        .insert(record.current_hash.as_slice(), record.id.as_str())?;
    tx.open_multimap_table(SESSIONS_BY_USER)?
        .insert(record.user_id.as_str(), record.id.as_str())?;
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
    let mut tokens = tx.open_table(REFRESH_TOKENS)?;
    tokens.remove(s.current_hash.as_slice())?;
    for h in &s.previous_hashes {
        tokens.remove(h.as_slice())?;
    }
    tx.open_multimap_table(SESSIONS_BY_USER)?
        .remove(s.user_id.as_str(), s.id.as_str())?;
    tx.open_table(SESSIONS)?.remove(s.id.as_str())?;
    Ok(())
}

impl Store {
    /// A live session together with its user: the one read behind every bearer check.
    pub async fn session_with_user(
        &self,
        session_id: String,
        now: UnixTime,
    ) -> Result<Option<(Session, UserRecord)>, StoreError> {
        self.read(move |tx| {
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
            let u: UserRecord = decode("users", bytes.value())?;
            Ok(Some((Session::from(&s), u)))
        })
        .await
    }

    /// Whether a refresh-token hash is known at all (live or recently rotated out). A read, so
    /// that invented tokens are refused without taking the write lock.
    pub async fn refresh_token_known(&self, hash: [u8; 32]) -> Result<bool, StoreError> {
        self.read(move |tx| {
            Ok(tx
                .open_table(REFRESH_TOKENS)?
                .get(hash.as_slice())?
                .is_some())
        })
        .await
    }

    /// Present a refresh token (by hash) and, if it is live, replace it with `new_hash`.
    pub async fn rotate_refresh(
        &self,
        presented: [u8; 32],
        new_hash: [u8; 32],
        now: UnixTime,
        grace_secs: i64,
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
            if super::users::get_user(tx, &s.user_id)?.disabled {
                delete_session(tx, &s)?;
                return Ok((Rotation::Unknown, Changed::Yes));
            }
            if s.current_hash != presented {
                let last = s.previous_hashes.last() == Some(&presented);
                if last && grace_secs > 0 && now - s.rotated_at <= grace_secs {
                    return Ok((Rotation::WithinGrace { session_id }, Changed::No));
                }
                delete_session(tx, &s)?;
                let (session_id, user_id) = (s.id, s.user_id);
                return Ok((Rotation::Reused { session_id, user_id }, Changed::Yes));
            }
            let mut tokens = tx.open_table(REFRESH_TOKENS)?;
            s.previous_hashes.push(s.current_hash);
            if s.previous_hashes.len() > REMEMBERED_PREDECESSORS {
                let oldest = s.previous_hashes.remove(0);
                tokens.remove(oldest.as_slice())?;
            }
            s.current_hash = new_hash;
            s.rotated_at = now;
            s.last_used_at = now;
            tokens.insert(new_hash.as_slice(), s.id.as_str())?;
            drop(tokens);
            put_session(tx, &s)?;
            Ok((Rotation::Rotated(Session::from(&s)), Changed::Yes))
        })
        .await
    }

    /// End a session if it belongs to `user_id`. Returns whether one was ended.
    pub async fn revoke_session(
        &self,
        user_id: String,
        session_id: String,
    ) -> Result<bool, StoreError> {
        self.write_if_changed(move |tx| match get_session(tx, &session_id)? {
            Some(s) if s.user_id == user_id => {
                delete_session(tx, &s)?;
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
            let index = tx.open_multimap_table(SESSIONS_BY_USER)?;
            let sessions = tx.open_table(SESSIONS)?;
            let mut out = Vec::new();
            for id in index.get(user_id.as_str())? {
                let id = id?;
                if let Some(bytes) = sessions.get(id.value())? {
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

    fn new_session(id: &str, hash: u8, now: UnixTime) -> NewSession {
        NewSession {
            id: id.into(),
            user_id: "user-1".into(),
            now,
            expires_at: now + 1000,
            user_agent: None,
            ip: None,
            network: None,
            refresh_hash: [hash; 32],
        }
    }

    fn test_user() -> crate::store::records::UserRecord {
        crate::store::records::UserRecord {
            v: crate::store::records::RECORD_VERSION,
            id: "user-1".into(),
            email: "u@example.com".into(),
            name: "U".into(),
            company: None,
            plan: "free".into(),
            password_hash: crate::secret::Secret::new(String::new()),
            created_at: 1,
            email_verified_at: None,
            two_factor_enabled: false,
            disabled: false,
            totp_secret: None,
            totp_pending: None,
            totp_last_step: None,
            backup_salt: None,
            backup_codes: Vec::new(),
            login_networks: Vec::new(),
        }
    }

    async fn store_with_session() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = Store::open(&tmp.path().join("db.redb")).expect("open");
        let s = new_session("ses-1", 1, 100);
        store
            .write(move |tx| {
                super::super::users::put_user(tx, &test_user())?;
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
            .rotate_refresh([1; 32], [2; 32], 110, 0)
            .await
            .expect("rotate");
        assert!(matches!(r, Rotation::Rotated(ref s) if s.last_used_at == 110));
        assert!(matches!(
            store
                .rotate_refresh([1; 32], [3; 32], 111, 0)
                .await
                .expect("reuse"),
            Rotation::Reused { .. }
        ));
        // The successor died with the session.
        assert_eq!(
            store
                .rotate_refresh([2; 32], [4; 32], 112, 0)
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
            .rotate_refresh([1; 32], [2; 32], 110, 10)
            .await
            .expect("rotate");
        assert_eq!(
            store
                .rotate_refresh([1; 32], [3; 32], 120, 10)
                .await
                .expect("grace"),
            Rotation::WithinGrace {
                session_id: "ses-1".into()
            }
        );
        // Past the grace it is reuse.
        assert!(matches!(
            store
                .rotate_refresh([1; 32], [3; 32], 121, 10)
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
                .rotate_refresh([1; 32], [2; 32], 1100, 0)
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
        for i in 1..=(REMEMBERED_PREDECESSORS as u8 + 2) {
            let r = store
                .rotate_refresh([i; 32], [i + 1; 32], 100, 0)
                .await
                .expect("rotate");
            assert!(matches!(r, Rotation::Rotated(_)));
        }
        // Token 1 was forgotten: unknown, and the session lives on.
        assert_eq!(
            store
                .rotate_refresh([1; 32], [99; 32], 100, 0)
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
                .rotate_refresh([1; 32], [3; 32], 5000, 0)
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
    async fn only_the_owner_revokes() {
        let (_tmp, store) = store_with_session().await;
        assert!(!store
            .revoke_session("user-2".into(), "ses-1".into())
            .await
            .expect("other"));
        assert!(store
            .revoke_session("user-1".into(), "ses-1".into())
            .await
            .expect("owner"));
        assert!(!store
            .revoke_session("user-1".into(), "ses-1".into())
            .await
            .expect("gone"));
    }
}

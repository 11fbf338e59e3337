//! API keys: create under a per-user cap, list, revoke, find by hash, and record usage in batches.

use std::sync::Arc;

use redb::{ReadableMultimapTable, ReadableTable, WriteTransaction};

use crate::clock::UnixTime;
use crate::crypto::random;
use crate::domain::models::ApiKey;

use crate::domain::account::Account;

use crate::domain::audit::Event;

use super::audit::append;
use super::records::{decode, decode_user, encode, ApiKeyRecord};
use super::schema::{API_KEYS, API_KEYS_BY_ID, API_KEYS_BY_USER, USERS};
use super::{newest_first, Changed, RedbStore, StoreError};

/// Result of creating a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCreateOutcome {
    /// Committed.
    Created,
    /// The user already holds the most live keys allowed; nothing was written.
    LimitReached,
}

fn delete_key(tx: &WriteTransaction, k: &ApiKeyRecord) -> Result<(), StoreError> {
    super::read_cache::touch(&k.user_id);
    tx.open_table(API_KEYS)?.remove(k.hash.as_slice())?;
    tx.open_table(API_KEYS_BY_ID)?.remove(k.id.as_str())?;
    tx.open_multimap_table(API_KEYS_BY_USER)?
        .remove(k.user_id.as_str(), k.id.as_str())?;
    Ok(())
}

/// A user's keys, expired ones included, from the tables of a read or a write transaction.
/// Delete every key of `user_id` (account deletion).
pub(super) fn delete_keys_of(tx: &WriteTransaction, user_id: &str) -> Result<(), StoreError> {
    let keys = keys_of(
        &tx.open_multimap_table(API_KEYS_BY_USER)?,
        &tx.open_table(API_KEYS_BY_ID)?,
        &tx.open_table(API_KEYS)?,
        user_id,
    )?;
    for k in &keys {
        delete_key(tx, k)?;
    }
    Ok(())
}

fn keys_of(
    index: &impl ReadableMultimapTable<&'static str, &'static str>,
    by_id: &impl ReadableTable<&'static str, &'static [u8]>,
    keys: &impl ReadableTable<&'static [u8], &'static [u8]>,
    user_id: &str,
) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let mut out = Vec::new();
    for id in index.get(user_id)? {
        let id = id?;
        let Some(hash) = by_id.get(id.value())? else {
            return Err(StoreError::Corrupt(format!(
                "api key {} without hash",
                id.value()
            )));
        };
        let Some(bytes) = keys.get(hash.value())? else {
            return Err(StoreError::Corrupt(format!(
                "api key {} without record",
                id.value()
            )));
        };
        out.push(decode("api_keys", bytes.value())?);
    }
    Ok(out)
}

impl RedbStore {
    /// Create `key` unless the user already holds `max_per_user` live ones. Expired keys of the
    /// user are removed in the same transaction.
    pub async fn create_api_key(
        &self,
        key: ApiKey,
        max_per_user: usize,
        event: Event,
    ) -> Result<KeyCreateOutcome, StoreError> {
        self.write_if_changed(move |tx| {
            let existing = keys_of(
                &tx.open_multimap_table(API_KEYS_BY_USER)?,
                &tx.open_table(API_KEYS_BY_ID)?,
                &tx.open_table(API_KEYS)?,
                &key.user_id,
            )?;
            let seq = existing.iter().map(|k| k.seq).max().map_or(0, |s| s + 1);
            let shown: Vec<ApiKey> = existing.iter().map(ApiKey::from).collect();
            let (expired, fits) = ApiKey::room_for_one_more(&shown, key.created_at, max_per_user);
            for i in &expired {
                delete_key(tx, &existing[*i])?;
            }
            let pruned = if expired.is_empty() {
                Changed::No
            } else {
                Changed::Yes
            };
            if !fits {
                return Ok((KeyCreateOutcome::LimitReached, pruned));
            }
            let record = ApiKeyRecord::new(key, seq);
            tx.open_table(API_KEYS)?
                .insert(record.hash.as_slice(), encode(&record)?.as_slice())?;
            tx.open_table(API_KEYS_BY_ID)?
                .insert(record.id.as_str(), record.hash.as_slice())?;
            tx.open_multimap_table(API_KEYS_BY_USER)?
                .insert(record.user_id.as_str(), record.id.as_str())?;
            append(tx, &[event])?;
            Ok((KeyCreateOutcome::Created, Changed::Yes))
        })
        .await
    }

    /// A user's live keys, newest first.
    pub async fn list_api_keys(
        &self,
        user_id: String,
        now: UnixTime,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.read(move |tx| {
            let all = keys_of(
                &tx.open_multimap_table(API_KEYS_BY_USER)?,
                &tx.open_table(API_KEYS_BY_ID)?,
                &tx.open_table(API_KEYS)?,
                &user_id,
            )?;
            let live: Vec<&ApiKeyRecord> = all.iter().filter(|k| now < k.expires_at).collect();
            let sorted = newest_first(live, |k| (k.created_at, k.seq, k.id.clone()));
            Ok(sorted.into_iter().map(ApiKey::from).collect())
        })
        .await
    }

    /// Delete a key if it belongs to `user_id`. Returns whether one was deleted.
    pub async fn revoke_api_key(
        &self,
        user_id: String,
        key_id: String,
        event: Event,
    ) -> Result<bool, StoreError> {
        self.write_if_changed(move |tx| {
            let hash = {
                let by_id = tx.open_table(API_KEYS_BY_ID)?;
                let found = by_id.get(key_id.as_str())?.map(|h| h.value().to_vec());
                match found {
                    Some(h) => h,
                    None => return Ok((false, Changed::No)),
                }
            };
            let record: Option<ApiKeyRecord> = {
                let keys = tx.open_table(API_KEYS)?;
                let found = keys.get(hash.as_slice())?;
                match found {
                    Some(bytes) => Some(decode("api_keys", bytes.value())?),
                    None => None,
                }
            };
            match record {
                Some(k) if k.user_id == user_id => {
                    delete_key(tx, &k)?;
                    append(tx, &[event])?;
                    Ok((true, Changed::Yes))
                }
                _ => Ok((false, Changed::No)),
            }
        })
        .await
    }

    /// The live key with this hash, and its owner: the one read behind every API-key use.
    pub async fn api_key_with_user(
        &self,
        hash: [u8; 32],
        now: UnixTime,
    ) -> Result<Option<Arc<(ApiKey, Account)>>, StoreError> {
        if let Some(hit) = self.cache.key(&hash, now) {
            return Ok(Some(hit));
        }
        self.cache.read_key(hash, || {
            self.read_inline(|tx| {
                let keys = tx.open_table(API_KEYS)?;
                let Some(bytes) = keys.get(hash.as_slice())? else {
                    return Ok(None);
                };
                let k: ApiKeyRecord = decode("api_keys", bytes.value())?;
                if !random::ct_eq(&k.hash, &hash) || now >= k.expires_at {
                    return Ok(None);
                }
                let users = tx.open_table(USERS)?;
                let Some(bytes) = users.get(k.user_id.as_str())? else {
                    return Err(StoreError::Corrupt(format!(
                        "api key {} of missing user",
                        k.id
                    )));
                };
                Ok(Some((ApiKey::from(&k), decode_user(bytes.value())?)))
            })
        })
    }

    /// Record when keys were last used, in one transaction. Keys deleted meanwhile are skipped.
    pub async fn record_api_key_use(
        &self,
        uses: Vec<([u8; 32], UnixTime)>,
    ) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        self.write(move |tx| {
            let mut keys = tx.open_table(API_KEYS)?;
            for (hash, at) in uses {
                let record: Option<ApiKeyRecord> = match keys.get(hash.as_slice())? {
                    Some(bytes) => Some(decode("api_keys", bytes.value())?),
                    None => None,
                };
                if let Some(mut k) = record {
                    if k.last_used_at.is_none_or(|t| t < at) {
                        k.last_used_at = Some(at);
                        keys.insert(hash.as_slice(), encode(&k)?.as_slice())?;
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, hash: u8, user: &str, at: UnixTime) -> ApiKey {
        ApiKey {
            id: id.into(),
            hash: [hash; 32],
            user_id: user.into(),
            name: "n".into(),
            prefix: "ch_live_abcd".into(),
            scopes: vec!["databases:read".into()],
            created_at: at,
            expires_at: at + 100,
            last_used_at: None,
        }
    }

    #[tokio::test]
    async fn create_find_list_use_and_revoke() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = RedbStore::open(&tmp.path().join("db.redb")).expect("open");
        assert_eq!(
            store
                .create_api_key(
                    key("key-1", 1, "u1", 10),
                    2,
                    crate::store::audit::test_event()
                )
                .await
                .expect("c"),
            KeyCreateOutcome::Created
        );
        assert_eq!(
            store
                .create_api_key(
                    key("key-2", 2, "u1", 11),
                    2,
                    crate::store::audit::test_event()
                )
                .await
                .expect("c"),
            KeyCreateOutcome::Created
        );
        assert_eq!(
            store
                .create_api_key(
                    key("key-3", 3, "u1", 12),
                    2,
                    crate::store::audit::test_event()
                )
                .await
                .expect("c"),
            KeyCreateOutcome::LimitReached
        );
        let ids: Vec<String> = store
            .list_api_keys("u1".into(), 20)
            .await
            .expect("list")
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert_eq!(ids, ["key-2", "key-1"]);
        // A key whose user row is missing is damage, reported as an error, not "no such key".
        assert!(store.api_key_with_user([1; 32], 20).await.is_err());
        store
            .record_api_key_use(vec![([1; 32], 15), ([9; 32], 15)])
            .await
            .expect("use");
        let k1 = store
            .list_api_keys("u1".into(), 20)
            .await
            .expect("list")
            .pop()
            .expect("k1");
        assert_eq!(k1.last_used_at, Some(15));
        assert!(!store
            .revoke_api_key(
                "u2".into(),
                "key-1".into(),
                crate::store::audit::test_event()
            )
            .await
            .expect("other user"));
        assert!(store
            .revoke_api_key(
                "u1".into(),
                "key-1".into(),
                crate::store::audit::test_event()
            )
            .await
            .expect("owner"));
        assert!(!store
            .revoke_api_key(
                "u1".into(),
                "key-1".into(),
                crate::store::audit::test_event()
            )
            .await
            .expect("gone"));
        // Expired keys leave the list and free their slot.
        assert!(store
            .list_api_keys("u1".into(), 111)
            .await
            .expect("list")
            .is_empty());
        assert_eq!(
            store
                .create_api_key(
                    key("key-4", 4, "u1", 200),
                    1,
                    crate::store::audit::test_event()
                )
                .await
                .expect("c"),
            KeyCreateOutcome::Created
        );
    }
}

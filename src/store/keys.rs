//! Signing keys: loaded at start (one is created on first start), rotated by the operator, and
//! forgotten once no token they signed can still be alive.

use redb::{ReadableTable, WriteTransaction};

use crate::clock::UnixTime;
use crate::crypto::keys::KeyPair;

use crate::domain::audit::Event;

use super::audit::append;
use super::records::{decode, encode, SigningKeyRecord, RECORD_VERSION};
use super::schema::SIGNING_KEYS;
use super::{RedbStore, StoreError};

/// A stored signing key with its dates.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// The key.
    pub pair: KeyPair,
    /// When it was made.
    pub created_at: UnixTime,
    /// When a newer key replaced it.
    pub retired_at: Option<UnixTime>,
}

/// Whether a key still verifies at `now`: not retired, or retired less than `keep_for` ago.
pub(super) fn in_use(r: &SigningKeyRecord, now: UnixTime, keep_for: i64) -> bool {
    r.retired_at
        .is_none_or(|t| now < t.saturating_add(keep_for))
}

/// Every key (oldest first), after deleting the retired ones older than `keep_for`.
fn load(
    tx: &WriteTransaction,
    now: UnixTime,
    keep_for: i64,
) -> Result<Vec<SigningKeyRecord>, StoreError> {
    let mut table = tx.open_table(SIGNING_KEYS)?;
    let mut records = Vec::new();
    let mut expired = Vec::new();
    for row in table.iter()? {
        let (kid, bytes) = row?;
        let r: SigningKeyRecord = decode("signing_keys", bytes.value())?;
        if in_use(&r, now, keep_for) {
            records.push(r);
        } else {
            expired.push(kid.value().to_string());
        }
    }
    for kid in expired {
        table.remove(kid.as_str())?;
    }
    records.sort_by_key(|r| r.created_at);
    Ok(records)
}

fn insert_new(tx: &WriteTransaction, now: UnixTime) -> Result<SigningKeyRecord, StoreError> {
    let key = KeyPair::generate();
    let record = SigningKeyRecord {
        v: RECORD_VERSION,
        seed: *key.seed(),
        created_at: now,
        retired_at: None,
    };
    tx.open_table(SIGNING_KEYS)?
        .insert(key.kid(), encode(&record)?.as_slice())?;
    Ok(record)
}

/// The keys of stored records, as the keyring takes them.
pub(super) fn stored(records: Vec<SigningKeyRecord>) -> Vec<StoredKey> {
    records
        .into_iter()
        .map(|r| StoredKey {
            pair: KeyPair::from_seed(&r.seed),
            created_at: r.created_at,
            retired_at: r.retired_at,
        })
        .collect()
}

impl RedbStore {
    /// The signing keys still in use, oldest first, read without writing anything.
    pub async fn signing_keys(
        &self,
        now: UnixTime,
        keep_for: i64,
    ) -> Result<Vec<StoredKey>, StoreError> {
        self.read(move |tx| {
            let mut records = Vec::new();
            for row in tx.open_table(SIGNING_KEYS)?.iter()? {
                let (_, bytes) = row?;
                let r: SigningKeyRecord = decode("signing_keys", bytes.value())?;
                if in_use(&r, now, keep_for) {
                    records.push(r);
                }
            }
            records.sort_by_key(|r| r.created_at);
            Ok(stored(records))
        })
        .await
    }

    /// Every signing key still in use, oldest first; on first start, one is created.
    pub async fn signing_keys_or_create(
        &self,
        now: UnixTime,
        keep_for: i64,
    ) -> Result<Vec<StoredKey>, StoreError> {
        self.write(move |tx| {
            let mut records = load(tx, now, keep_for)?;
            if records.iter().all(|r| r.retired_at.is_some()) {
                let created = insert_new(tx, now)?;
                tracing::info!(kid = %KeyPair::from_seed(&created.seed).kid(), "created a signing key");
                records.push(created);
            }
            Ok(stored(records))
        })
        .await
    }

    /// Retire the signing key(s) in use and create a new one; returns the keys in use after.
    pub async fn rotate_signing_key(
        &self,
        now: UnixTime,
        keep_for: i64,
        event: Event,
    ) -> Result<Vec<StoredKey>, StoreError> {
        self.write(move |tx| {
            let mut records = load(tx, now, keep_for)?;
            let mut table = tx.open_table(SIGNING_KEYS)?;
            for r in records.iter_mut().filter(|r| r.retired_at.is_none()) {
                r.retired_at = Some(now);
                let kid = KeyPair::from_seed(&r.seed).kid().to_string();
                table.insert(kid.as_str(), encode(r)?.as_slice())?;
            }
            drop(table);
            let new = insert_new(tx, now)?;
            let kid = KeyPair::from_seed(&new.seed).kid().to_string();
            records.push(new);
            append(tx, &[event.detail("kid", kid)])?;
            Ok(stored(records))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotation_retires_then_forgets_old_keys() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = RedbStore::open(&tmp.path().join("db.redb")).expect("open");
        let first = store
            .signing_keys_or_create(100, 900)
            .await
            .expect("create");
        assert_eq!(first.len(), 1);
        let again = store.signing_keys_or_create(200, 900).await.expect("load");
        assert_eq!(
            again[0].pair.kid(),
            first[0].pair.kid(),
            "reused, not replaced"
        );
        let rotated = store
            .rotate_signing_key(300, 900, crate::store::audit::test_event())
            .await
            .expect("rotate");
        assert_eq!(rotated.len(), 2);
        assert_eq!(rotated[0].retired_at, Some(300));
        assert_eq!(rotated[1].retired_at, None);
        let later = store.signing_keys_or_create(1200, 900).await.expect("load");
        assert_eq!(
            later.len(),
            1,
            "the retired key is gone once its tokens expired"
        );
        assert_eq!(later[0].pair.kid(), rotated[1].pair.kid());
    }
}

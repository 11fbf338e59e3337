//! Signing keys: loaded at start, created on first start.

use redb::ReadableTable;

use crate::clock::UnixTime;
use crate::crypto::keys::KeyPair;

use super::records::{decode, encode, SigningKeyRecord, RECORD_VERSION};
use super::schema::SIGNING_KEYS;
use super::{Store, StoreError};

impl Store {
    /// Every signing key, oldest first; on an empty store, one is generated and committed first.
    pub async fn signing_keys_or_create(&self, now: UnixTime) -> Result<Vec<KeyPair>, StoreError> {
        self.write(move |tx| {
            let mut table = tx.open_table(SIGNING_KEYS)?;
            let mut records = Vec::new();
            for row in table.iter()? {
                let (_, bytes) = row?;
                records.push(decode::<SigningKeyRecord>("signing_keys", bytes.value())?);
            }
            if records.is_empty() {
                let key = KeyPair::generate();
                let record = SigningKeyRecord {
                    v: RECORD_VERSION,
                    seed: *key.seed(),
                    created_at: now,
                };
                table.insert(key.kid(), encode(&record)?.as_slice())?;
                records.push(record);
            }
            records.sort_by_key(|r| r.created_at);
            Ok(records
                .iter()
                .map(|r| KeyPair::from_seed(&r.seed))
                .collect())
        })
        .await
    }
}

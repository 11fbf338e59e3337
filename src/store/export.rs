//! Export and import: every stored record as one JSON object per line, in a documented,
//! versioned format that another backend (or another host) reads back, so that every user,
//! session, refresh lineage, API key, two-factor state, signing key, queued mail, pending mail
//! token and audit entry moves with its credentials still working.
//!
//! The first line is the header `{"type":"header","format":"cloudheed-auth-export",
//! "version":1,...}`; each other line has a `type` and the record as this build stores it
//! (field names as in `records.rs`; hashes and keys as arrays of bytes). Indexes are not
//! exported: import rebuilds them. Audit entries travel as their exact stored bytes (`cbor`,
//! base64), since the chain hashes them.

use std::io::{BufRead, Write};

use data_encoding::{BASE64, HEXLOWER};
use redb::{
    ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::records::{
    decode, encode, ApiKeyRecord, AuditAnchorRecord, AuditRecord, MailTokenRecord, OutboxRecord,
    SessionRecord, SigningKeyRecord, UserRecord,
};
use super::schema::{
    API_KEYS, API_KEYS_BY_ID, API_KEYS_BY_USER, AUDIT, AUDIT_BY_USER, AUDIT_META,
    LATEST_MAIL_TOKEN, MAIL_TOKENS, OUTBOX, REFRESH_TOKENS, SESSIONS, SIGNING_KEYS, USERS,
    USERS_BY_EMAIL, USER_SESSIONS,
};
use super::{RedbStore, StoreError};
use crate::crypto::keys::KeyPair;

/// The format's name in the header.
pub const FORMAT: &str = "cloudheed-auth-export";
/// The format version this build writes and reads.
pub const VERSION: u64 = 1;

/// What an export or import moved, per kind of record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// Accounts.
    pub users: u64,
    /// Sessions (with their refresh lineages).
    pub sessions: u64,
    /// API keys.
    pub api_keys: u64,
    /// Signing keys.
    pub signing_keys: u64,
    /// Queued mail.
    pub mail: u64,
    /// Pending mail tokens.
    pub mail_tokens: u64,
    /// Audit entries.
    pub audit: u64,
}

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Line {
    Header {
        format: String,
        version: u64,
        schema: u64,
        exported_at: i64,
    },
    User {
        record: UserRecord,
    },
    Session {
        record: SessionRecord,
    },
    RefreshToken {
        hash: String,
        session_id: String,
    },
    ApiKey {
        record: ApiKeyRecord,
    },
    SigningKey {
        record: SigningKeyRecord,
    },
    Mail {
        record: OutboxRecord,
    },
    MailToken {
        hash: String,
        record: MailTokenRecord,
    },
    LatestMailToken {
        key: String,
        hash: String,
    },
    Audit {
        seq: u64,
        cbor: String,
    },
    AuditAnchor {
        record: AuditAnchorRecord,
    },
}

pub(super) fn line(out: &mut impl Write, l: &Line) -> Result<(), StoreError> {
    let text = serde_json::to_string(l).map_err(|e| StoreError::Corrupt(format!("export: {e}")))?;
    writeln!(out, "{text}").map_err(|e| StoreError::Setup(format!("export: {e}")))
}

pub(super) fn hex32(text: &str) -> Result<[u8; 32], StoreError> {
    HEXLOWER
        .decode(text.as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("import: {text:?} is not a 32-byte hex hash")))
}

impl RedbStore {
    /// Write every record to `out`, as of one consistent snapshot. Blocking: run it off the
    /// async workers.
    pub fn export_to(&self, out: &mut impl Write, now: i64) -> Result<Moved, StoreError> {
        let tx = self.db.begin_read()?;
        export(&tx, out, now)
    }

    /// Fill this database, which must hold no account, signing key or audit entry, from an
    /// export read from `input`; indexes are rebuilt. All or nothing: one transaction.
    /// Blocking: run it off the async workers.
    pub fn import_from(&self, input: impl BufRead) -> Result<Moved, StoreError> {
        let lines = read_lines(input)?;
        let tx = self.db.begin_write()?;
        let moved = import(&tx, lines)?;
        tx.commit()?;
        self.cache.clear();
        Ok(moved)
    }
}

/// Every line of an export, after checking its header names this format and version.
pub(super) fn read_lines(input: impl BufRead) -> Result<Vec<Line>, StoreError> {
    let lines: Vec<Line> = input
        .lines()
        .enumerate()
        .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|(n, l)| {
            let l = l.map_err(|e| StoreError::Setup(format!("import: {e}")))?;
            serde_json::from_str(&l)
                .map_err(|e| StoreError::Corrupt(format!("import: line {}: {e}", n + 1)))
        })
        .collect::<Result<_, _>>()?;
    match lines.first() {
        Some(Line::Header {
            format, version, ..
        }) if format == FORMAT && *version == VERSION => {}
        Some(Line::Header { version, .. }) => {
            return Err(StoreError::Setup(format!(
                "import: export format version {version}; this build reads version {VERSION}"
            )))
        }
        _ => {
            return Err(StoreError::Setup(
                "import: not a cloudheed-auth export (no header line)".into(),
            ))
        }
    }
    Ok(lines)
}

fn export(tx: &ReadTransaction, out: &mut impl Write, now: i64) -> Result<Moved, StoreError> {
    let mut moved = Moved::default();
    let schema = tx
        .open_table(super::schema::META)?
        .get("schema_version")?
        .map_or(0, |v| v.value());
    line(
        out,
        &Line::Header {
            format: FORMAT.into(),
            version: VERSION,
            schema,
            exported_at: now,
        },
    )?;
    for row in tx.open_table(SIGNING_KEYS)?.iter()? {
        let (_, v) = row?;
        let record: SigningKeyRecord = decode("signing_keys", v.value())?;
        line(out, &Line::SigningKey { record })?;
        moved.signing_keys += 1;
    }
    for row in tx.open_table(USERS)?.iter()? {
        let (_, v) = row?;
        let record: UserRecord = decode("users", v.value())?;
        line(out, &Line::User { record })?;
        moved.users += 1;
    }
    for row in tx.open_table(SESSIONS)?.iter()? {
        let (_, v) = row?;
        let record: SessionRecord = decode("sessions", v.value())?;
        line(out, &Line::Session { record })?;
        moved.sessions += 1;
    }
    for row in tx.open_table(REFRESH_TOKENS)?.iter()? {
        let (k, v) = row?;
        let hash = HEXLOWER.encode(k.value());
        let session_id = v.value().to_string();
        line(out, &Line::RefreshToken { hash, session_id })?;
    }
    for row in tx.open_table(API_KEYS)?.iter()? {
        let (_, v) = row?;
        let record: ApiKeyRecord = decode("api_keys", v.value())?;
        line(out, &Line::ApiKey { record })?;
        moved.api_keys += 1;
    }
    for row in tx.open_table(OUTBOX)?.iter()? {
        let (_, v) = row?;
        let record: OutboxRecord = decode("outbox", v.value())?;
        line(out, &Line::Mail { record })?;
        moved.mail += 1;
    }
    for row in tx.open_table(MAIL_TOKENS)?.iter()? {
        let (k, v) = row?;
        let record: MailTokenRecord = decode("mail_tokens", v.value())?;
        let hash = HEXLOWER.encode(k.value());
        line(out, &Line::MailToken { hash, record })?;
        moved.mail_tokens += 1;
    }
    for row in tx.open_table(LATEST_MAIL_TOKEN)?.iter()? {
        let (k, v) = row?;
        let (key, hash) = (k.value().to_string(), HEXLOWER.encode(v.value()));
        line(out, &Line::LatestMailToken { key, hash })?;
    }
    if let Some(v) = tx.open_table(AUDIT_META)?.get("anchor")? {
        let record: AuditAnchorRecord = decode("audit_meta", v.value())?;
        line(out, &Line::AuditAnchor { record })?;
    }
    for row in tx.open_table(AUDIT)?.iter()? {
        let (k, v) = row?;
        let (seq, cbor) = (k.value(), BASE64.encode(v.value()));
        line(out, &Line::Audit { seq, cbor })?;
        moved.audit += 1;
    }
    Ok(moved)
}

fn import(tx: &WriteTransaction, lines: Vec<Line>) -> Result<Moved, StoreError> {
    let taken = |n: u64, what: &str| {
        if n > 0 {
            Err(StoreError::Setup(format!(
                "import: this database already holds {what}; import into an empty one"
            )))
        } else {
            Ok(())
        }
    };
    taken(tx.open_table(USERS)?.len()?, "accounts")?;
    taken(tx.open_table(SIGNING_KEYS)?.len()?, "signing keys")?;
    taken(tx.open_table(AUDIT)?.len()?, "audit entries")?;
    let mut moved = Moved::default();
    let mut users = tx.open_table(USERS)?;
    let mut by_email = tx.open_table(USERS_BY_EMAIL)?;
    let mut sessions = tx.open_table(SESSIONS)?;
    let mut user_sessions = tx.open_multimap_table(USER_SESSIONS)?;
    let mut refresh = tx.open_table(REFRESH_TOKENS)?;
    let mut keys = tx.open_table(API_KEYS)?;
    let mut keys_by_id = tx.open_table(API_KEYS_BY_ID)?;
    let mut keys_by_user = tx.open_multimap_table(API_KEYS_BY_USER)?;
    let mut signing = tx.open_table(SIGNING_KEYS)?;
    let mut outbox = tx.open_table(OUTBOX)?;
    let mut tokens = tx.open_table(MAIL_TOKENS)?;
    let mut latest = tx.open_table(LATEST_MAIL_TOKEN)?;
    let mut audit = tx.open_table(AUDIT)?;
    let mut audit_by_user = tx.open_table(AUDIT_BY_USER)?;
    let mut audit_meta = tx.open_table(AUDIT_META)?;
    for l in lines {
        match l {
            Line::Header { .. } => {}
            Line::User { record } => {
                let key = record.email.to_ascii_lowercase();
                if by_email.insert(key.as_str(), record.id.as_str())?.is_some() {
                    return Err(StoreError::Corrupt(format!(
                        "import: two accounts with the email {}",
                        record.email
                    )));
                }
                users.insert(record.id.as_str(), encode(&record)?.as_slice())?;
                moved.users += 1;
            }
            Line::Session { record } => {
                user_sessions.insert(
                    record.user_id.as_str(),
                    (record.created_at, record.expires_at, record.id.as_str()),
                )?;
                sessions.insert(record.id.as_str(), encode(&record)?.as_slice())?;
                moved.sessions += 1;
            }
            Line::RefreshToken { hash, session_id } => {
                refresh.insert(hex32(&hash)?.as_slice(), session_id.as_str())?;
            }
            Line::ApiKey { record } => {
                keys_by_id.insert(record.id.as_str(), record.hash.as_slice())?;
                keys_by_user.insert(record.user_id.as_str(), record.id.as_str())?;
                keys.insert(record.hash.as_slice(), encode(&record)?.as_slice())?;
                moved.api_keys += 1;
            }
            Line::SigningKey { record } => {
                let kid = KeyPair::from_seed(&record.seed).kid().to_string();
                signing.insert(kid.as_str(), encode(&record)?.as_slice())?;
                moved.signing_keys += 1;
            }
            Line::Mail { record } => {
                outbox.insert(record.id.as_str(), encode(&record)?.as_slice())?;
                moved.mail += 1;
            }
            Line::MailToken { hash, record } => {
                tokens.insert(hex32(&hash)?.as_slice(), encode(&record)?.as_slice())?;
                moved.mail_tokens += 1;
            }
            Line::LatestMailToken { key, hash } => {
                latest.insert(key.as_str(), hex32(&hash)?.as_slice())?;
            }
            Line::Audit { seq, cbor } => {
                let bytes = BASE64
                    .decode(cbor.as_bytes())
                    .map_err(|e| StoreError::Corrupt(format!("import: audit {seq}: {e}")))?;
                let record: AuditRecord = decode("audit", &bytes)?;
                if record.seq != seq {
                    return Err(StoreError::Corrupt(format!(
                        "import: audit entry {seq} says it is entry {}",
                        record.seq
                    )));
                }
                if let Some(user) = &record.user_id {
                    audit_by_user.insert((user.as_str(), seq), ())?;
                }
                audit.insert(seq, bytes.as_slice())?;
                moved.audit += 1;
            }
            Line::AuditAnchor { record } => {
                audit_meta.insert("anchor", encode(&record)?.as_slice())?;
            }
        }
    }
    if moved.signing_keys == 0 {
        return Err(StoreError::Setup(
            "import: the export holds no signing key".into(),
        ));
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{Event, EventKind};
    use crate::store::NewSession;

    fn store(dir: &tempfile::TempDir, name: &str) -> RedbStore {
        RedbStore::open(&dir.path().join(name).join("db.redb")).expect("open")
    }

    #[tokio::test]
    async fn an_export_imports_into_an_identical_store_and_only_into_an_empty_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let from = store(&dir, "a");
        from.signing_keys_or_create(100, 900).await.expect("key");
        let user = crate::store::NewUser {
            id: "user-1".into(),
            email: "Mover@Example.com".into(),
            email_key: "mover@example.com".into(),
            name: "M".into(),
            company: None,
            plan: "free".into(),
            password_hash: crate::secret::Secret::new("$scrypt$x".into()),
            created_at: 100,
        };
        let session = NewSession {
            id: "ses-1".into(),
            user_id: "user-1".into(),
            now: 100,
            expires_at: 10_000,
            user_agent: None,
            ip: None,
            keep_at_most: 10,
            network: None,
            refresh_hash: [7; 32],
        };
        let event = Event::by_system(EventKind::Register, 100).user("user-1");
        from.create_account(user, session, vec![event])
            .await
            .expect("create");
        let mut first = Vec::new();
        let moved = from.export_to(&mut first, 200).expect("export");
        assert_eq!((moved.users, moved.sessions, moved.audit), (1, 1, 1));

        let to = store(&dir, "b");
        let imported = to.import_from(first.as_slice()).expect("import");
        assert_eq!(imported, moved);
        let mut second = Vec::new();
        to.export_to(&mut second, 200).expect("export again");
        assert_eq!(first, second, "the same records, byte for byte");
        assert!(to
            .user_by_email("mover@example.com".into())
            .await
            .expect("read")
            .is_some());
        assert!(to.refresh_token_known([7; 32]).await.expect("read"));
        assert_eq!(to.walk_audit(None).await.expect("walk").count, 1);
        let again = to.import_from(first.as_slice());
        assert!(matches!(again, Err(StoreError::Setup(m)) if m.contains("already holds")));
        let fresh = store(&dir, "c");
        for bad in [&b""[..], b"{\"type\":\"user\"}\n", b"not json\n"] {
            assert!(fresh.import_from(bad).is_err());
        }
        let future = b"{\"type\":\"header\",\"format\":\"cloudheed-auth-export\",\"version\":2,\"schema\":9,\"exported_at\":0}\n";
        let refused = fresh.import_from(&future[..]).expect_err("newer");
        assert!(refused.to_string().contains("version 2"), "{refused}");
    }
}

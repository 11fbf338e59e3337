//! The store: the only code that knows redb or PostgreSQL, speaking domain types (`Account`,
//! `Session`, `ApiKey`, ...) and never its records, which stay private to it. [`Store`]
//! (`facade.rs`) is what services call; it forwards to the redb store (this module's files) or
//! the PostgreSQL one (`pg/`).
//!
//! **The use-case API** — what both backends implement, each operation one transaction that
//! applies the domain's rules inside it and is durable when it returns `Ok`:
//! - accounts (`users.rs`): `email_taken`, `user_by_email`, `create_account`, `start_session`;
//! - two-factor state (`two_factor.rs`): `user_by_id`, `set_pending_totp`, `enable_totp`,
//!   `disable_totp`;
//! - sessions (`sessions.rs`): `session_with_user`, `refresh_token_known`, `rotate_refresh`,
//!   `revoke_session`, `list_sessions`;
//! - API keys (`api_keys.rs`): `api_key_with_user`, `create_api_key`, `list_api_keys`,
//!   `revoke_api_key`, `record_api_key_use`;
//! - signing keys (`keys.rs`): `signing_keys_or_create`, `rotate_signing_key`;
//! - operator use cases (`admin.rs`): `list_users`, `change_user`;
//! - the mail outbox (`outbox.rs`): `queue_mail` (and `outbox::queue_mail` inside another use
//!   case's transaction), `due_mail`, `mail_sent`, `mail_failed`, `queued_mail_count`.
//! - the audit log (`audit.rs`): `record_events` (and `audit::append` inside the transaction of
//!   the change an event records: every write above that records one takes its `Event`),
//!   `activity`, `audit_entries`, `walk_audit`, `prune_audit`.
//!
//! Operator maintenance — backup, checking a file before a restore, holding the database during
//! one, counts and the schema version — lives apart in `maintenance.rs`; the redb specifics of
//! opening, migrating and transactions live here.
//!
//! Durability: when an operation returns `Ok`, its commit is on disk, so a 2xx sent after it
//! survives a crash. Writes go through one writer thread (`writer.rs`) that groups the
//! transactions queued at once under a single fsync, each still committed or aborted on its own.

mod admin;
mod api_keys;
mod audit;
mod export;
mod facade;
mod keys;
mod mail_tokens;
mod maintenance;
mod outbox;
mod pg;
mod read_cache;
mod records;
mod rows;
mod schema;
mod sessions;
mod two_factor;
mod users;
mod writer;

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

pub use api_keys::KeyCreateOutcome;
pub use audit::{AuditQuery, AuditWalk, Tamper};
pub use export::{Moved, FORMAT as EXPORT_FORMAT};
pub use facade::Store;
pub use keys::StoredKey;
pub use mail_tokens::{
    EmailChange, NewMailToken, Reset as MailTokenReset, Verified as MailTokenVerified,
};
pub use maintenance::{check_backup, check_backup_file, hold_database};
pub use sessions::{NewSession, Rotation};
pub use two_factor::{Confirmed, DisableOutcome, EnableOutcome, SetupOutcome};
pub use users::{CreateOutcome, DeleteBy, DeleteOutcome, NewUser, StartOutcome};

/// Why the store failed. A missing row is never an error (`Ok(None)`), and a failure is never a
/// missing row: an auth decision must not mistake a broken database for an unknown user.
#[derive(Debug)]
pub enum StoreError {
    /// The database failed (I/O, corruption it detected, lock held by another process). Opaque,
    /// so no backend type leaks past the store.
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// A record could not be encoded or decoded.
    Corrupt(String),
    /// The file was written by a newer cloudheed-auth.
    SchemaTooNew {
        /// Version in the file.
        found: u64,
        /// Newest version this build understands.
        supported: u64,
    },
    /// The database file or its directory is unsafe or unusable.
    Setup(String),
    /// The runtime shut down before the operation ran.
    Cancelled,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Backend(e) => write!(f, "database: {e}"),
            StoreError::Corrupt(why) => write!(f, "corrupt record: {why}"),
            StoreError::SchemaTooNew { found, supported } => write!(
                f,
                "the database has schema version {found}, but this build supports at most {supported}; use a newer cloudheed-auth"
            ),
            StoreError::Setup(why) => f.write_str(why),
            StoreError::Cancelled => f.write_str("shutting down"),
        }
    }
}

impl std::error::Error for StoreError {}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Backend(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Sort newest first by a (created_at, id) key; the id breaks ties so the order is stable.
fn newest_first<T, K: Ord>(mut items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    items.sort_by_key(|t| std::cmp::Reverse(key(t)));
    items
}

/// Whether a write transaction changed anything and so must be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Changed {
    Yes,
    No,
}

/// The embedded backend: one redb file, written by one thread; cheap to clone.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    /// Read-through caches of the bearer-check reads, kept current by this store's writes.
    cache: Arc<read_cache::ReadCache>,
    /// The one thread that writes; it ends, and lets go of the database, with the last handle.
    writer: Arc<writer::Writer>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbStore")
    }
}

impl RedbStore {
    /// Open (or create) the database at `path`, creating its directory with mode 0700 and the
    /// file with mode 0600. Refuses a file that others may read, and a newer schema. Blocking.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let setup = |what: &str, e: std::io::Error| StoreError::Setup(format!("{what}: {e}"));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| setup(&format!("cannot create data dir {}", dir.display()), e))?;
            }
        }
        // Create the file ourselves so it is never, even briefly, readable by others.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| setup(&format!("cannot open {}", path.display()), e))?;
        let mode = std::fs::metadata(path)
            .map_err(|e| setup(&format!("cannot stat {}", path.display()), e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StoreError::Setup(format!(
                "{} is readable by group or others (mode {:o}); it holds signing keys: run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
        let db = Arc::new(Database::create(path)?);
        RedbStore::migrate(&db)?;
        Ok(RedbStore {
            writer: Arc::new(writer::Writer::start(db.clone())?),
            cache: Arc::new(read_cache::ReadCache::new(0, 0)),
            db,
        })
    }

    /// `open`, with read-through caches of at most `sessions` sessions and `keys` API keys
    /// behind the bearer checks (0 turns one off).
    pub fn open_with_caches(
        path: &Path,
        sessions: usize,
        keys: usize,
    ) -> Result<RedbStore, StoreError> {
        let mut store = RedbStore::open(path)?;
        store.cache = Arc::new(read_cache::ReadCache::new(sessions, keys));
        Ok(store)
    }

    /// Sessions and API keys held by the read-through caches.
    pub fn cached(&self) -> (usize, usize) {
        self.cache.held()
    }

    /// Bring the file to this build's schema; before the writer starts, so nothing else writes.
    fn migrate(db: &Database) -> Result<(), StoreError> {
        let tx = db.begin_write()?;
        {
            let mut meta = tx.open_table(schema::META)?;
            let found = meta.get("schema_version")?.map(|v| v.value());
            match found {
                Some(v) if v > schema::SCHEMA_VERSION => {
                    return Err(StoreError::SchemaTooNew {
                        found: v,
                        supported: schema::SCHEMA_VERSION,
                    })
                }
                Some(1) => {
                    sessions::index_sessions_by_age(&tx)?;
                    meta.insert("schema_version", schema::SCHEMA_VERSION)?;
                }
                // 2 -> 3 added the outbox and the mail tokens, 3 -> 4 the audit log: new tables
                // only, which `each_table` creates.
                Some(2 | 3) => {
                    meta.insert("schema_version", schema::SCHEMA_VERSION)?;
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", schema::SCHEMA_VERSION)?;
                }
            }
        }
        schema::each_table(&mut Create(&tx))?;
        tx.commit()?;
        Ok(())
    }

    /// Run one point read on the calling thread. For the reads behind every bearer check: a
    /// redb read transaction and one or two lookups cost a few microseconds, far less than the
    /// hop to the blocking pool (~20 µs) that `read` pays, and redb readers never wait on the
    /// writer. Only for bounded lookups, never for scans.
    fn read_inline<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.db.begin_read()?)
    }

    /// Run one read transaction on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        crate::blocking::run(move || {
            let tx = db.begin_read()?;
            f(&tx)
        })
        .await
        .map_err(|_| StoreError::Cancelled)?
    }

    /// Run one write transaction on the writer thread; it commits only if `f` returns `Ok`, and
    /// this returns once the commit is durable.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_if_changed(|tx| f(tx).map(|out| (out, Changed::Yes)))
            .await
    }

    /// Like `write`, but `f` says whether it changed anything; a transaction that changed
    /// nothing is aborted rather than committed, so a refused request never costs an fsync of
    /// its own.
    async fn write_if_changed<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<(T, Changed), StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let gathering = move |tx: &WriteTransaction| {
            read_cache::start_gathering();
            let result = f(tx);
            let touched = read_cache::gathered();
            result.map(|(out, changed)| ((out, touched), changed))
        };
        match self.writer.write(gathering).await {
            // Durable now, and not yet answered: entries read before it can no longer match.
            Ok((out, touched)) => {
                self.cache.invalidate(&touched);
                Ok(out)
            }
            Err(e) => {
                // A failed sync may leave commits visible that nothing vouches for.
                self.cache.clear();
                Err(e)
            }
        }
    }
}

/// Creates each table that does not exist yet, so every later transaction finds all of them.
struct Create<'a>(&'a WriteTransaction);

impl schema::EachTable for Create<'_> {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        def: redb::TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        self.0.open_table(def)?;
        Ok(())
    }

    fn multimap<K: redb::Key + 'static, V: redb::Key + 'static>(
        &mut self,
        def: redb::MultimapTableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        self.0.open_multimap_table(def)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_private_dir_and_file_and_records_the_schema() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("data").join("db.redb");
        let store = RedbStore::open(&path).expect("open");
        assert_eq!(
            store.schema_version().await.expect("read"),
            schema::SCHEMA_VERSION
        );
        let dir_mode = std::fs::metadata(path.parent().expect("dir"))
            .expect("stat")
            .permissions()
            .mode();
        let file_mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(file_mode & 0o777, 0o600);
        drop(store);
        RedbStore::open(&path).expect("reopens");
    }

    #[tokio::test]
    async fn refuses_a_newer_schema() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("db.redb");
        let store = RedbStore::open(&path).expect("open");
        store
            .write(|tx| {
                tx.open_table(schema::META)?.insert("schema_version", 99)?;
                Ok(())
            })
            .await
            .expect("write");
        drop(store);
        let err = RedbStore::open(&path).expect_err("too new");
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_world_readable_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("db.redb");
        drop(RedbStore::open(&path).expect("open"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = RedbStore::open(&path).expect_err("unsafe");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_second_opener_is_refused_while_the_first_holds_the_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("db.redb");
        let _first = RedbStore::open(&path).expect("open");
        assert!(RedbStore::open(&path).is_err());
    }
}

//! Operator use cases on the store: list and change accounts, and a consistent backup.

use std::path::Path;

use redb::{
    Database, MultimapTableDefinition, ReadOnlyMultimapTable, ReadOnlyTable, ReadTransaction,
    ReadableDatabase, ReadableMultimapTable, ReadableTable, TableDefinition, WriteTransaction,
};

use crate::domain::account::{Account, AccountChange};

use super::records::decode_user;
use super::rows::{get_user, put_user};
use super::schema;
use super::sessions::delete_sessions_where;
use super::{Changed, Store, StoreError};

impl Store {
    /// Every account, oldest first.
    pub async fn list_users(&self) -> Result<Vec<Account>, StoreError> {
        self.read(|tx| {
            let mut out: Vec<Account> = Vec::new();
            for row in tx.open_table(schema::USERS)?.iter()? {
                let (_, bytes) = row?;
                out.push(decode_user(bytes.value())?);
            }
            out.sort_by(|a, b| {
                a.created_at
                    .cmp(&b.created_at)
                    .then_with(|| a.email.cmp(&b.email))
            });
            Ok(out)
        })
        .await
    }

    /// Apply an operator's `change` to the account `user_id`; returns the account after it. A
    /// disabled account's sessions end with it, in the same transaction.
    pub async fn change_user(
        &self,
        user_id: String,
        change: AccountChange,
    ) -> Result<Account, StoreError> {
        self.write_if_changed(move |tx| {
            let mut user = get_user(tx, &user_id)?;
            let disable = change == AccountChange::Disable;
            if !user.apply(change) {
                return Ok((user, Changed::No));
            }
            if disable {
                delete_sessions_where(tx, &user_id, |_| true)?;
            }
            put_user(tx, &user)?;
            Ok((user, Changed::Yes))
        })
        .await
    }

    /// Write every table, as of one instant, into a new database at `out` (which must not
    /// exist). It is written beside `out` first and renamed only once complete and checked, so
    /// a failed backup leaves nothing that looks like one.
    pub async fn backup_to(&self, out: std::path::PathBuf) -> Result<(), StoreError> {
        let db = self.db.clone();
        crate::blocking::run(move || {
            if out.exists() {
                return Err(StoreError::Setup(format!(
                    "{} already exists",
                    out.display()
                )));
            }
            let partial = out.with_extension("partial");
            let result = (|| {
                let snapshot = db.begin_read()?;
                copy_all(&snapshot, &partial)?;
                check_backup(&partial)?;
                let expected = table_sizes(&snapshot)?;
                let written = table_sizes(&Database::open(&partial)?.begin_read()?)?;
                if expected != written {
                    return Err(StoreError::Corrupt(
                        "the backup does not hold every table".into(),
                    ));
                }
                std::fs::rename(&partial, &out)
                    .map_err(|e| StoreError::Setup(format!("cannot write {}: {e}", out.display())))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Cancelled)?
    }
}

/// Every table's name and row count: a backup must match its source exactly.
fn table_sizes(tx: &ReadTransaction) -> Result<Vec<(String, u64)>, StoreError> {
    use redb::{MultimapTableHandle, ReadableTableMetadata, TableHandle};
    let mut out = Vec::new();
    for t in tx.list_tables()? {
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(t.name());
        let len = tx
            .open_untyped_table(def)
            .map(|t| t.len())
            .unwrap_or(Ok(0))?;
        out.push((t.name().to_string(), len));
    }
    for t in tx.list_multimap_tables()? {
        out.push((format!("multimap {}", t.name()), 0));
    }
    out.sort();
    Ok(out)
}

/// Check that `path` is an existing cloudheed-auth database this build can read, with a
/// schema and at least one signing key, without creating or changing anything.
pub fn check_backup(path: &Path) -> Result<(), StoreError> {
    check_contents(&Database::open(path)?.begin_read()?)
}

/// [`check_backup`] on a file already open, read-only: restore checks its copy through the
/// handle it wrote, because the name is in a directory another user can change.
pub fn check_backup_file(file: std::fs::File) -> Result<(), StoreError> {
    let backend = redb::backends::FileBackend::new(file)?;
    let db = redb::Builder::new().open_read_only_with_backend(backend)?;
    check_contents(&db.begin_read()?)
}

fn check_contents(tx: &ReadTransaction) -> Result<(), StoreError> {
    let version = match tx.open_table(schema::META) {
        Ok(meta) => meta.get("schema_version")?.map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    match version {
        None => return Err(StoreError::Setup("not a cloudheed-auth database".into())),
        Some(v) if v > schema::SCHEMA_VERSION => {
            return Err(StoreError::SchemaTooNew {
                found: v,
                supported: schema::SCHEMA_VERSION,
            })
        }
        Some(_) => {}
    }
    let keys = match tx.open_table(schema::SIGNING_KEYS) {
        Ok(t) => {
            use redb::ReadableTableMetadata;
            t.len()?
        }
        Err(_) => 0,
    };
    if keys == 0 {
        return Err(StoreError::Setup(
            "the database holds no signing key".into(),
        ));
    }
    Ok(())
}

/// The current database held open so that nothing else (a server) can open it meanwhile;
/// dropping it lets go.
pub struct HeldDatabase {
    // Never read: holding it open is the point.
    _db: Database,
}

impl std::fmt::Debug for HeldDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldDatabase")
    }
}

/// Open the database at `db`, if there is one, to hold its lock; never through a symlink or a
/// second name, because redb writes to what it opens (a repair, a header into an empty file)
/// and restore runs as root.
pub fn hold_database(db: &Path) -> Result<Option<HeldDatabase>, String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(db)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", db.display())),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(format!(
            "{} is not a plain file with one name; move it away first",
            db.display()
        ));
    }
    let backend = redb::backends::FileBackend::new(file).map_err(|e| e.to_string())?;
    redb::Builder::new()
        .create_with_backend(backend)
        .map(|db| Some(HeldDatabase { _db: db }))
        .map_err(|e| format!("the current database is in use: {e}"))
}

fn copy_all(src: &ReadTransaction, out: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| StoreError::Setup(format!("cannot create {}: {e}", out.display())))?;
    let dst = Database::create(out)?;
    let tx = dst.begin_write()?;
    schema::each_table(&mut Copy { src, dst: &tx })?;
    tx.commit()?;
    Ok(())
}

/// Copies every row of each table from a snapshot into the backup being written.
struct Copy<'a> {
    src: &'a ReadTransaction,
    dst: &'a WriteTransaction,
}

impl schema::EachTable for Copy<'_> {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        def: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        copy(self.src, self.dst, def)
    }

    fn multimap<K: redb::Key + 'static, V: redb::Key + 'static>(
        &mut self,
        def: MultimapTableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        copy_multi(self.src, self.dst, def)
    }
}

fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let from: ReadOnlyTable<K, V> = src.open_table(def)?;
    let mut to = dst.open_table(def)?;
    for row in from.iter()? {
        let (k, v) = row?;
        to.insert(k.value(), v.value())?;
    }
    Ok(())
}

fn copy_multi<K: redb::Key + 'static, V: redb::Key + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: MultimapTableDefinition<K, V>,
) -> Result<(), StoreError> {
    let from: ReadOnlyMultimapTable<K, V> = src.open_multimap_table(def)?;
    let mut to = dst.open_multimap_table(def)?;
    for row in from.iter()? {
        let (k, values) = row?;
        for v in values {
            to.insert(k.value(), v?.value())?;
        }
    }
    Ok(())
}

//! Operator maintenance of the database, apart from the use cases: a consistent backup checked
//! row by row against its source, checking a file before restoring it, holding the current
//! database while it is replaced, and the counts and schema version that metrics and readiness
//! read. A second backend would bring its own tools for these.

use std::path::Path;

use redb::{
    Database, MultimapTableDefinition, ReadOnlyMultimapTable, ReadOnlyTable, ReadTransaction,
    ReadableDatabase, ReadableMultimapTable, ReadableTable, TableDefinition, WriteTransaction,
};

use super::schema;
use super::{RedbStore, StoreError};

impl RedbStore {
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
                let written = Database::open(&partial)?;
                schema::each_table(&mut Compare {
                    a: &snapshot,
                    b: &written.begin_read()?,
                })?;
                drop(written);
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

    /// The schema version recorded in the file; also a cheap proof that the store answers.
    pub async fn schema_version(&self) -> Result<u64, StoreError> {
        self.read(|tx| {
            let meta = tx.open_table(schema::META)?;
            Ok(meta.get("schema_version")?.map_or(0, |v| v.value()))
        })
        .await
    }

    /// How many users, sessions and API keys are stored.
    pub async fn counts(&self) -> Result<(u64, u64, u64), StoreError> {
        use redb::ReadableTableMetadata;
        self.read(|tx| {
            Ok((
                tx.open_table(schema::USERS)?.len()?,
                tx.open_table(schema::SESSIONS)?.len()?,
                tx.open_table(schema::API_KEYS)?.len()?,
            ))
        })
        .await
    }
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

/// A table's rows as (key, value) bytes, in key order.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Compares every row of each table between a snapshot and its backup, byte for byte.
struct Compare<'a> {
    a: &'a ReadTransaction,
    b: &'a ReadTransaction,
}

impl Compare<'_> {
    fn differ(name: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "the backup's {name} table differs from the database"
        ))
    }
}

impl schema::EachTable for Compare<'_> {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        def: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        let rows = |tx: &ReadTransaction| -> Result<Rows, StoreError> {
            let table: ReadOnlyTable<K, V> = tx.open_table(def)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                out.push((
                    K::as_bytes(&k.value()).as_ref().to_vec(),
                    V::as_bytes(&v.value()).as_ref().to_vec(),
                ));
            }
            Ok(out)
        };
        if rows(self.a)? != rows(self.b)? {
            return Err(Self::differ(&def.to_string()));
        }
        Ok(())
    }

    fn multimap<K: redb::Key + 'static, V: redb::Key + 'static>(
        &mut self,
        def: MultimapTableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        let rows = |tx: &ReadTransaction| -> Result<Rows, StoreError> {
            let table: ReadOnlyMultimapTable<K, V> = tx.open_multimap_table(def)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (k, values) = row?;
                for v in values {
                    out.push((
                        K::as_bytes(&k.value()).as_ref().to_vec(),
                        V::as_bytes(&v?.value()).as_ref().to_vec(),
                    ));
                }
            }
            Ok(out)
        };
        if rows(self.a)? != rows(self.b)? {
            return Err(Self::differ(&def.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backup_is_compared_row_by_row_with_its_source() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = RedbStore::open(&tmp.path().join("db.redb")).expect("open");
        store.signing_keys_or_create(100, 900).await.expect("a key");
        let out = tmp.path().join("backup.redb");
        store.backup_to(out.clone()).await.expect("backup");
        let source = store.db.begin_read().expect("read");
        let copy = Database::open(&out).expect("open backup");
        schema::each_table(&mut Compare {
            a: &source,
            b: &copy.begin_read().expect("read"),
        })
        .expect("identical");
        let other = RedbStore::open(&tmp.path().join("other.redb")).expect("open");
        let empty = other.db.begin_read().expect("read");
        let err = schema::each_table(&mut Compare {
            a: &source,
            b: &empty,
        })
        .expect_err("a database without the signing key differs");
        assert!(err.to_string().contains("signing_keys"), "{err}");
    }
}

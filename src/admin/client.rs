//! What the admin CLI does: send a command to the running server over its socket, or run it on
//! the database directly when no server runs (redb admits one process per file); take a backup
//! either way; restore one into a stopped server's data dir.
//!
//! Opening a stopped database takes what the server builds at startup, so the caller passes
//! an opener (the binary's is built on `App::build`): admin, which the app starts, never
//! reaches back into the app.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{parse_answer, request_line, socket_path, EXPORT, SNAPSHOT};
use crate::config::Config;
use crate::service::admin::{execute, AdminCommand};
use crate::service::state::AppState;
use crate::store::{check_backup, check_backup_file, hold_database};

/// How long to wait for the server to answer a command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for the server to send a backup.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

/// Run `cmd` for the CLI: on the running server if there is one, else on the database directly,
/// opened with `open` (its error is the reason given to the operator).
pub fn run<O, F>(config: &Config, cmd: AdminCommand, open: O) -> Result<Value, String>
where
    O: FnOnce(Config) -> F,
    F: Future<Output = Result<Arc<AppState>, String>>,
{
    match UnixStream::connect(socket_path(config)) {
        Ok(stream) => over_socket(stream, &cmd),
        Err(_) => offline(config, cmd, open),
    }
}

/// A backup for the CLI: streamed from the running server, or written from the database opened
/// with `open`. The file appears at `out` only once complete and checked.
pub fn backup<O, F>(config: &Config, out: &Path, open: O) -> Result<Value, String>
where
    O: FnOnce(Config) -> F,
    F: Future<Output = Result<Arc<AppState>, String>>,
{
    let check = |p: &Path| check_backup(p).map_err(|e| format!("the backup does not open: {e}"));
    let path = |path| AdminCommand::Backup { path };
    dump(config, out, open, SNAPSHOT, path, check, "backup")
}

/// An export of every record (JSON lines) for the CLI: streamed from the running server, or
/// written from the database opened with `open`. The file appears at `out` only once complete.
pub fn export<O, F>(config: &Config, out: &Path, open: O) -> Result<Value, String>
where
    O: FnOnce(Config) -> F,
    F: Future<Output = Result<Arc<AppState>, String>>,
{
    let path = |path| AdminCommand::Export { path };
    dump(config, out, open, EXPORT, path, check_export, "export")
}

/// A new file at `out` with what the running server streams for `word` (checked with `check`),
/// or, with no server, what `offline` (given the absolute path) writes from the database.
fn dump<O, F>(
    config: &Config,
    out: &Path,
    open: O,
    word: &str,
    offline_cmd: impl FnOnce(String) -> AdminCommand,
    check: impl Fn(&Path) -> Result<(), String>,
    name: &str,
) -> Result<Value, String>
where
    O: FnOnce(Config) -> F,
    F: Future<Output = Result<Arc<AppState>, String>>,
{
    if out.exists() {
        return Err(format!("{} already exists", out.display()));
    }
    let Ok(stream) = UnixStream::connect(socket_path(config)) else {
        let out = std::path::absolute(out).map_err(|e| e.to_string())?;
        return offline(config, offline_cmd(out.display().to_string()), open);
    };
    receive(stream, word, out, check)
        .map(|bytes| json!({name: out.display().to_string(), "bytes": bytes}))
}

/// An export starts with its header line.
fn check_export(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("export: {e}"))?;
    let mut first = String::new();
    BufReader::new(file)
        .read_line(&mut first)
        .map_err(|e| format!("export: {e}"))?;
    if first.contains(crate::store::EXPORT_FORMAT) {
        Ok(())
    } else {
        Err("the export is incomplete".into())
    }
}

/// Fill a stopped server's empty data dir from an export (`export` of this or another backend):
/// every account, session, key, signing key, queued mail, mail token and audit entry, with the
/// import recorded as the log's next entry.
pub fn import(config: &Config, input: &Path) -> Result<Value, String> {
    if UnixStream::connect(socket_path(config)).is_ok() {
        return Err("a server is running on this data dir; stop it first".into());
    }
    let file =
        std::fs::File::open(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        // The store alone: the server's start would make a signing key the import must not meet.
        let store = crate::store::Store::open_configured(&config.store, &config.db_path(), (0, 0))
            .await
            .map_err(|e| e.to_string())?;
        let importing = store.clone();
        let moved = crate::blocking::run(move || importing.import_from(BufReader::new(file)))
            .await
            .map_err(|_| "shutting down".to_string())?
            .map_err(|e| e.to_string())?;
        let now = crate::clock::Clock::now(&crate::clock::SystemClock);
        let event =
            crate::domain::audit::Event::by_admin(crate::domain::audit::EventKind::Restored, now)
                .detail("from", input.display().to_string())
                .detail("kind", "import");
        store
            .record_events(vec![event])
            .await
            .map_err(|e| format!("imported, but not recorded in the audit log: {e}"))?;
        Ok(json!({"imported": input.display().to_string(), "moved": moved}))
    })
}

/// Entries exported per page: each page is one answer line over the socket.
const EXPORT_PAGE: usize = 1000;

/// Write every audit entry, oldest first, one JSON object per line, to the new file `out`
/// (0600; it appears only once complete): from the running server page by page, or from the
/// database opened once with `open`.
pub fn export_audit<O, F>(config: &Config, out: &Path, open: O) -> Result<Value, String>
where
    O: FnOnce(Config) -> F,
    F: Future<Output = Result<Arc<AppState>, String>>,
{
    use std::os::unix::fs::OpenOptionsExt;
    if out.exists() {
        return Err(format!("{} already exists", out.display()));
    }
    let partial = out.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut written = 0u64;
    let mut write_page = |page: Value| -> Result<Option<u64>, String> {
        let rows = page.as_array().cloned().unwrap_or_default();
        for row in &rows {
            writeln!(file, "{row}").map_err(|e| format!("export: {e}"))?;
        }
        written += rows.len() as u64;
        Ok(if rows.len() < EXPORT_PAGE {
            None
        } else {
            rows.last().and_then(|r| r["seq"].as_u64())
        })
    };
    let page = |after| AdminCommand::AuditPage {
        after,
        limit: EXPORT_PAGE,
    };
    let result = if UnixStream::connect(socket_path(config)).is_ok() {
        let mut after = None;
        loop {
            let stream = UnixStream::connect(socket_path(config))
                .map_err(|e| format!("admin socket: {e}"))?;
            match write_page(over_socket(stream, &page(after))?)? {
                Some(last) => after = Some(last),
                None => break Ok(()),
            }
        }
    } else {
        on_stopped(config, open, |state| async move {
            let mut after = None;
            loop {
                match write_page(execute(&state, page(after)).await?)? {
                    Some(last) => after = Some(last),
                    None => break Ok(()),
                }
            }
        })
    };
    let done = result
        .and_then(|()| file.sync_all().map_err(|e| format!("export: {e}")))
        .and_then(|()| std::fs::rename(&partial, out).map_err(|e| format!("export: {e}")));
    if done.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    done.map(|()| json!({"exported": written, "to": out.display().to_string()}))
}

fn over_socket(mut stream: UnixStream, cmd: &AdminCommand) -> Result<Value, String> {
    let io = |e: std::io::Error| format!("admin socket: {e}");
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
    let line = request_line(cmd)?;
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    parse_answer(&answer)
}

fn offline<O, F>(config: &Config, cmd: AdminCommand, open: O) -> Result<Value, String>
where
    O: FnOnce(Config) -> F,
    F: Future<Output = Result<Arc<AppState>, String>>,
{
    on_stopped(
        config,
        open,
        |state| async move { execute(&state, cmd).await },
    )
}

/// Open the stopped server's database with `open` and run `work` on it, on a runtime of its own.
fn on_stopped<O, F, W, Fut, T>(config: &Config, open: O, work: W) -> Result<T, String>
where
    O: FnOnce(Config) -> F,
    F: Future<Output = Result<Arc<AppState>, String>>,
    W: FnOnce(Arc<AppState>) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let on_redb = config.store.backend == crate::config::StoreBackend::Redb;
    if on_redb && !config.db_path().exists() {
        return Err(format!("no database at {}", config.db_path().display()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let state = open(config.clone()).await?;
        work(state).await
    })
}

/// Ask the server on `stream` for a snapshot and write it to `out`.
fn receive(
    mut stream: UnixStream,
    word: &str,
    out: &Path,
    check: impl Fn(&Path) -> Result<(), String>,
) -> Result<u64, String> {
    let io = |e: std::io::Error| format!("{word}: {e}");
    stream
        .set_read_timeout(Some(SNAPSHOT_TIMEOUT))
        .map_err(io)?;
    stream
        .write_all(format!("{word} {}\n", destination(out)).as_bytes())
        .map_err(io)?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header).map_err(io)?;
    let header = parse_answer(&header)?;
    let bytes = header["bytes"].as_u64().ok_or("the server gave no size")?;
    let partial = out.with_extension("partial");
    let written = write_checked(&mut reader, bytes, &partial, out, check);
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written.map(|()| bytes)
}

/// Where a backup goes, absolute and on one line, as its audit entry names it.
fn destination(out: &Path) -> String {
    let path = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
    path.display().to_string().replace(['\n', '\r'], " ")
}

/// Copy `bytes` bytes from `from` into a new file at `partial`, `check` it, and only then move
/// it to `out`.
fn write_checked(
    from: &mut impl std::io::Read,
    bytes: u64,
    partial: &Path,
    out: &Path,
    check: impl Fn(&Path) -> Result<(), String>,
) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| format!("backup: {e}");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .map_err(io)?;
    let copied = std::io::copy(&mut std::io::Read::take(from, bytes), &mut file).map_err(io)?;
    if copied != bytes {
        return Err("the backup was cut short".to_string());
    }
    file.sync_all().map_err(io)?;
    check(partial)?;
    std::fs::rename(partial, out).map_err(io)
}

/// Fill an empty data dir from a backup (any non-empty one with `force`). Refused while a
/// server (or anything else) holds the data dir's database: its lock is held across the swap.
///
/// It runs as root in a directory the service user owns, so it opens nothing there by a name
/// that user could have pointed elsewhere, and changes the copy only through its own handle.
pub fn restore(config: &Config, backup: &Path, force: bool) -> Result<(), String> {
    if config.store.backend != crate::config::StoreBackend::Redb {
        return Err(
            "restore copies a redb file; with store.backend = \"postgres\" restore with your \
             PostgreSQL tools (pg_restore), or import an export"
                .into(),
        );
    }
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    if UnixStream::connect(socket_path(config)).is_ok() {
        return Err("a server is running on this data dir; stop it first".into());
    }
    check_backup(backup)
        .map_err(|e| format!("{} is not a usable backup: {e}", backup.display()))?;
    let dir = &config.data_dir;
    let non_empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !force {
        return Err(format!(
            "{} is not empty; use --force to replace its database",
            dir.display()
        ));
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let db = config.db_path();
    // Hold the current database's lock, if there is one, so no server can start on it meanwhile.
    let held = hold_database(&db)?;
    // A fresh name each time: nothing can be planted at it in advance.
    let staging = dir.join(crate::crypto::random::id("cloudheed-auth.redb.restoring-"));
    let result = (|| {
        let io = |e: std::io::Error| e.to_string();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)
            .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        std::fs::File::open(backup)
            .and_then(|mut from| std::io::copy(&mut from, &mut file))
            .map_err(|e| format!("cannot copy {}: {e}", backup.display()))?;
        // The umask may have taken bits from the mode given at creation.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        // The service user (e.g. systemd's DynamicUser) must own what it will open.
        if let Ok(meta) = std::fs::metadata(dir) {
            let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
        }
        file.sync_all().map_err(io)?;
        let copy = file.metadata().map_err(io)?;
        // Keep our handle open until the placed file is compared with it: were the copy's inode
        // freed meanwhile, a symlink swapped in could be given the same inode number.
        let checked = file.try_clone().map_err(io)?;
        check_backup_file(checked).map_err(|e| format!("the copy does not open: {e}"))?;
        // rename replaces whatever is at either name and follows neither.
        std::fs::rename(&staging, &db).map_err(|e| format!("cannot put the copy in place: {e}"))?;
        // The staging name may have been swapped since it was created: only our copy will do.
        let placed = std::fs::symlink_metadata(&db).map_err(io)?;
        if !placed.is_file() || (placed.dev(), placed.ino()) != (copy.dev(), copy.ino()) {
            return Err(format!(
                "{} was changed by someone else during the restore",
                dir.display()
            ));
        }
        drop(file);
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    drop(held);
    result
}

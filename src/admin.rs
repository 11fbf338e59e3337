//! The admin channel: a Unix socket in the data dir (mode 0600) that a running server answers,
//! one JSON command per connection, and the client side the CLI uses — over the socket when a
//! server runs, directly on the database when none does (redb admits one process per file).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::config::Config;
use crate::service::admin::{execute, AdminCommand};
use crate::state::AppState;
use crate::store::{check_backup, check_backup_file, StoreError};

/// File name of the socket inside the data dir.
pub const SOCKET: &str = "admin.sock";
/// Longest command line accepted.
const MAX_LINE: u64 = 64 * 1024;

/// Path of the admin socket for `config`.
pub fn socket_path(config: &Config) -> PathBuf {
    config.data_dir.join(SOCKET)
}

/// Answer admin commands on `path` until the task is dropped.
pub async fn serve(state: Arc<AppState>, path: PathBuf) {
    // Only one server can hold the database, so a socket file left here is stale.
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "admin socket unavailable");
            return;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        tracing::error!(error = %e, "cannot restrict the admin socket; closing it");
        return;
    }
    // The data dir (0700) belongs to the server's user: only it, or root, may administer.
    let owner = path
        .parent()
        .and_then(|d| std::fs::metadata(d).ok())
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let allowed = stream
            .peer_cred()
            .is_ok_and(|c| c.uid() == 0 || Some(c.uid()) == owner);
        if !allowed {
            tracing::warn!("admin socket: connection from another user refused");
            continue;
        }
        let state = state.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader =
                tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE));
            let read =
                tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
            if line.trim() == SNAPSHOT {
                send_snapshot(&state, &mut write).await;
                return;
            }
            let answer = match read {
                Ok(Ok(_)) => match serde_json::from_str::<AdminCommand>(&line) {
                    Ok(cmd) => match execute(&state, cmd).await {
                        Ok(result) => json!({"ok": true, "result": result}),
                        Err(error) => json!({"ok": false, "error": error}),
                    },
                    Err(e) => json!({"ok": false, "error": format!("bad command: {e}")}),
                },
                _ => json!({"ok": false, "error": "no command received"}),
            };
            let reply = format!("{answer}\n");
            let _ =
                tokio::time::timeout(Duration::from_secs(30), write.write_all(reply.as_bytes()))
                    .await;
        });
    }
}

/// The request for a backup over the socket: the server writes a snapshot inside its data dir
/// (the only place a sandboxed service may write), streams it, and deletes it; the CLI writes
/// the file where the operator asked.
const SNAPSHOT: &str = "snapshot";

async fn send_snapshot(state: &AppState, write: &mut tokio::net::unix::OwnedWriteHalf) {
    let tmp = state
        .config
        .data_dir
        .join(format!("snapshot-{}.redb", crate::crypto::random::id("")));
    let result = state.store.backup_to(tmp.clone()).await;
    let header = match &result {
        Ok(()) => match std::fs::metadata(&tmp) {
            Ok(m) => json!({"ok": true, "result": {"bytes": m.len()}}),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        },
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let ok = header["ok"] == true;
    let sent = async {
        write.write_all(format!("{header}\n").as_bytes()).await?;
        if ok {
            let mut file = tokio::fs::File::open(&tmp).await?;
            tokio::io::copy(&mut file, write).await?;
        }
        write.flush().await
    };
    if let Err(e) = tokio::time::timeout(Duration::from_secs(600), sent)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client too slow",
            ))
        })
    {
        tracing::warn!(error = %e, "backup over the admin socket failed");
    }
    let _ = std::fs::remove_file(&tmp);
}

/// A backup for the CLI: streamed from the running server, or written from the database.
/// The file appears at `out` only once complete and checked.
pub fn backup(config: &Config, out: &Path) -> Result<Value, String> {
    if out.exists() {
        return Err(format!("{} already exists", out.display()));
    }
    let Ok(mut stream) = UnixStream::connect(socket_path(config)) else {
        let out = std::path::absolute(out).map_err(|e| e.to_string())?;
        return offline(
            config,
            AdminCommand::Backup {
                path: out.display().to_string(),
            },
        );
    };
    let io = |e: std::io::Error| format!("backup: {e}");
    stream
        .set_read_timeout(Some(Duration::from_secs(600)))
        .map_err(io)?;
    stream
        .write_all(format!("{SNAPSHOT}\n").as_bytes())
        .map_err(io)?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header).map_err(io)?;
    let header: Value =
        serde_json::from_str(&header).map_err(|_| "the server gave no answer".to_string())?;
    if header["ok"] != true {
        return Err(header["error"].as_str().unwrap_or("failed").to_string());
    }
    let bytes = header["result"]["bytes"]
        .as_u64()
        .ok_or("the server gave no size")?;
    let partial = out.with_extension("partial");
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(io)?;
        let copied =
            std::io::copy(&mut std::io::Read::take(&mut reader, bytes), &mut file).map_err(io)?;
        if copied != bytes {
            return Err("the backup was cut short".to_string());
        }
        file.sync_all().map_err(io)?;
        check_backup(&partial).map_err(|e| format!("the backup does not open: {e}"))?;
        std::fs::rename(&partial, out).map_err(io)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written.map(|()| json!({"backup": out.display().to_string(), "bytes": bytes}))
}

/// Run `cmd` for the CLI: on the running server if there is one, else on the database directly.
pub fn run(config: &Config, cmd: AdminCommand) -> Result<Value, String> {
    match UnixStream::connect(socket_path(config)) {
        Ok(stream) => over_socket(stream, &cmd),
        Err(_) => offline(config, cmd),
    }
}

fn over_socket(mut stream: UnixStream, cmd: &AdminCommand) -> Result<Value, String> {
    let io = |e: std::io::Error| format!("admin socket: {e}");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(io)?;
    let line = serde_json::to_string(cmd).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    let v: Value =
        serde_json::from_str(&answer).map_err(|_| "the server gave no answer".to_string())?;
    if v["ok"] == true {
        Ok(v["result"].clone())
    } else {
        Err(v["error"].as_str().unwrap_or("failed").to_string())
    }
}

fn offline(config: &Config, cmd: AdminCommand) -> Result<Value, String> {
    if !config.db_path().exists() {
        return Err(format!("no database at {}", config.db_path().display()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let app = crate::App::build(config.clone())
            .await
            .map_err(|e| match e {
                crate::StartupError::Store(StoreError::Backend(b))
                    if b.to_string().contains("already open") =>
                {
                    "a server holds the database but its admin socket does not answer".to_string()
                }
                other => other.to_string(),
            })?;
        execute(app.state(), cmd).await
    })
}

/// Fill an empty data dir from a backup (any non-empty one with `force`). Refused while a
/// server (or anything else) holds the data dir's database: its lock is held across the swap.
///
/// It runs as root in a directory the service user owns, so it opens nothing there by a name
/// that user could have pointed elsewhere, and changes the copy only through its own handle.
pub fn restore(config: &Config, backup: &Path, force: bool) -> Result<(), String> {
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
    let held = hold(&db)?;
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
        check_backup_file(file).map_err(|e| format!("the copy does not open: {e}"))?;
        // rename replaces whatever is at either name and follows neither.
        std::fs::rename(&staging, &db).map_err(|e| format!("cannot put the copy in place: {e}"))?;
        // The staging name may have been swapped since it was created: only our copy will do.
        let placed = std::fs::symlink_metadata(&db).map_err(io)?;
        if (placed.dev(), placed.ino()) != (copy.dev(), copy.ino()) {
            return Err(format!(
                "{} was changed by someone else during the restore",
                dir.display()
            ));
        }
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

/// Open the database at `db`, if there is one, to hold its lock; never through a symlink or a
/// second name, because redb writes to what it opens (a repair, a header into an empty file)
/// and restore runs as root.
fn hold(db: &Path) -> Result<Option<redb::Database>, String> {
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
        .map(Some)
        .map_err(|e| format!("the current database is in use: {e}"))
}

/// Render an answer for people: a table for a list of records, `key: value` lines for one.
pub fn render(v: &Value) -> String {
    let cell = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v {
        Value::Array(rows) if rows.iter().all(Value::is_object) && !rows.is_empty() => {
            let cols: Vec<String> = rows[0]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| cols.iter().map(|c| cell(&r[c])).collect())
                .collect();
            let widths: Vec<usize> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    cells
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |fields: Vec<String>| {
                fields
                    .iter()
                    .zip(&widths)
                    .map(|(f, w)| format!("{f:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            let mut out = vec![line(cols.iter().map(|c| c.to_uppercase()).collect())];
            out.extend(cells.into_iter().map(line));
            out.join("\n") + "\n"
        }
        Value::Array(rows) if rows.is_empty() => "(none)\n".into(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", cell(v)))
            .collect(),
        other => format!("{}\n", cell(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tables_and_records() {
        let rows = json!([{"email": "a@b.co", "plan": "free"}, {"email": "long@example.com", "plan": null}]);
        assert_eq!(
            render(&rows),
            "EMAIL             PLAN\na@b.co            free\nlong@example.com  -\n"
        );
        assert_eq!(
            render(&json!({"kid": "k1", "signing": true})),
            "kid: k1\nsigning: true\n"
        );
        assert_eq!(render(&json!([])), "(none)\n");
    }

    #[test]
    fn commands_travel_as_one_json_line() {
        let cmd = AdminCommand::UserSetPlan {
            email: "a@b.co".into(),
            plan: "pro".into(),
        };
        let line = serde_json::to_string(&cmd).expect("json");
        assert_eq!(
            line,
            r#"{"cmd":"user_set_plan","email":"a@b.co","plan":"pro"}"#
        );
        assert_eq!(
            serde_json::from_str::<AdminCommand>(&line).expect("back"),
            cmd
        );
    }
}

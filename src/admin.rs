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
use crate::store::{Store, StoreError};

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
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader =
                tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE));
            let read =
                tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
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
            let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
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
/// server runs on the data dir.
pub fn restore(config: &Config, backup: &Path, force: bool) -> Result<(), String> {
    if UnixStream::connect(socket_path(config)).is_ok() {
        return Err("a server is running on this data dir; stop it first".into());
    }
    let dir = &config.data_dir;
    let non_empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !force {
        return Err(format!(
            "{} is not empty; use --force to replace its database",
            dir.display()
        ));
    }
    let staging = dir.join("cloudheed-auth.redb.restoring");
    let _ = std::fs::remove_file(&staging);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::copy(backup, &staging)
        .map_err(|e| format!("cannot read {}: {e}", backup.display()))?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    // Opening checks that it is a database of ours, of a schema this build reads.
    if let Err(e) = Store::open(&staging) {
        let _ = std::fs::remove_file(&staging);
        return Err(format!("{} is not a usable backup: {e}", backup.display()));
    }
    std::fs::rename(&staging, config.db_path()).map_err(|e| e.to_string())
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

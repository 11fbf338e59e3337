//! The admin socket a running server answers: only its own user (or root) may connect, each
//! connection carries one bounded request line and gets one answer, or a streamed backup.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};

use super::{answer_line, parse_request, EXPORT, SNAPSHOT};
use crate::service::admin::execute;
use crate::service::state::AppState;

/// Longest command line accepted.
const MAX_LINE: u64 = 64 * 1024;
/// How long a client may take to send its command.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to read an answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to read a whole backup.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

/// Answer admin commands on `path` until the task is dropped.
pub async fn serve(state: Arc<AppState>, path: PathBuf) {
    let Some(listener) = bind(&path) else {
        return;
    };
    let owner = data_dir_owner(&path);
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
        tokio::spawn(answer(state.clone(), stream));
    }
}

/// The socket at `path`, open to its owner only; `None`, logged, if that cannot be had.
fn bind(path: &Path) -> Option<UnixListener> {
    // Only one server can hold the database, so a socket file left here is stale.
    let _ = std::fs::remove_file(path);
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "admin socket unavailable");
            return None;
        }
    };
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::error!(error = %e, "cannot restrict the admin socket; closing it");
        return None;
    }
    Some(listener)
}

/// The data dir (0700) belongs to the server's user: only it, or root, may administer.
fn data_dir_owner(socket: &Path) -> Option<u32> {
    socket
        .parent()
        .and_then(|d| std::fs::metadata(d).ok())
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
}

/// Read one request line from `stream` and answer it.
async fn answer(state: Arc<AppState>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE));
    let read = tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await;
    // `snapshot` and `export` may name where the CLI will write them, for the audit entry.
    let request = line.trim();
    for (word, dump) in [(SNAPSHOT, Dump::Snapshot), (EXPORT, Dump::Export)] {
        if let Some(rest) = request.strip_prefix(word) {
            if rest.is_empty() || rest.starts_with(' ') {
                let to = Some(rest.trim()).filter(|t| !t.is_empty());
                send_dump(&state, &mut write, dump, to.unwrap_or("the admin socket")).await;
                return;
            }
        }
    }
    let answer = match read {
        Ok(Ok(_)) => match parse_request(&line) {
            Ok(cmd) => execute(&state, cmd).await,
            Err(e) => Err(e),
        },
        Ok(Err(_)) | Err(_) => Err("no command received".into()),
    };
    let reply = answer_line(answer);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write.write_all(reply.as_bytes())).await;
}

/// What the CLI asks to be streamed.
#[derive(Debug, Clone, Copy)]
enum Dump {
    /// A consistent copy of the database file (`backup`).
    Snapshot,
    /// Every record as JSON lines (`export`).
    Export,
}

/// Write a snapshot or an export inside the data dir (the only place a sandboxed service may
/// write), stream it after its answer line, and delete it.
async fn send_dump(state: &AppState, write: &mut OwnedWriteHalf, dump: Dump, to: &str) {
    let name = match dump {
        Dump::Snapshot => "snapshot",
        Dump::Export => "export",
    };
    let tmp = state
        .config
        .data_dir
        .join(format!("{name}-{}.tmp", crate::crypto::random::id("")));
    let result = match dump {
        Dump::Snapshot => state
            .store
            .backup_to(tmp.clone())
            .await
            .map_err(|e| e.to_string()),
        Dump::Export => crate::service::admin::export_file(state, &tmp)
            .await
            .map(drop),
    };
    let header = match &result {
        Ok(()) => match std::fs::metadata(&tmp) {
            Ok(m) => Ok(json!({"bytes": m.len()})),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.clone()),
    };
    let ok = header.is_ok();
    let sent = async {
        write.write_all(answer_line(header).as_bytes()).await?;
        if ok {
            let mut file = tokio::fs::File::open(&tmp).await?;
            tokio::io::copy(&mut file, write).await?;
        }
        write.flush().await
    };
    let sent = async {
        sent.await?;
        if ok {
            crate::service::audit::backup_taken(state, to, name).await;
        }
        Ok(())
    };
    if let Err(e) = tokio::time::timeout(SNAPSHOT_TIMEOUT, sent)
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

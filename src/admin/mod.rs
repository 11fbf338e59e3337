//! The admin channel: a Unix socket in the data dir (mode 0600) that a running server answers
//! ([`server`]) and the CLI talks to ([`client`]). This module holds what both sides must agree
//! on: where the socket is, the one line each way, and how an answer reads for people.
//!
//! A request is one line: a JSON [`AdminCommand`], or [`SNAPSHOT`] for a backup or [`EXPORT`] for
//! an export (each with the destination the CLI will write, for the audit log). An answer is
//! one JSON line, `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`; after a snapshot's
//! answer the server streams `result.bytes` bytes of database.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::config::Config;
pub use crate::service::admin::AdminCommand;

pub mod client;
pub mod server;

pub use client::{backup, export, export_audit, import, restore, run};

/// File name of the socket inside the data dir.
pub const SOCKET: &str = "admin.sock";

/// The request for a backup over the socket: the server writes a snapshot inside its data dir
/// (the only place a sandboxed service may write), streams it, and deletes it; the CLI writes
/// the file where the operator asked.
const SNAPSHOT: &str = "snapshot";

/// The request for an export over the socket, streamed like a snapshot.
const EXPORT: &str = "export";

/// Path of the admin socket for `config`.
pub fn socket_path(config: &Config) -> PathBuf {
    config.data_dir.join(SOCKET)
}

/// `cmd` as its request line.
fn request_line(cmd: &AdminCommand) -> Result<String, String> {
    let line = serde_json::to_string(cmd).map_err(|e| e.to_string())?;
    Ok(format!("{line}\n"))
}

/// The command in a request line.
fn parse_request(line: &str) -> Result<AdminCommand, String> {
    serde_json::from_str(line).map_err(|e| format!("bad command: {e}"))
}

/// `answer` as its answer line.
fn answer_line(answer: Result<Value, String>) -> String {
    let answer = match answer {
        Ok(result) => json!({"ok": true, "result": result}),
        Err(error) => json!({"ok": false, "error": error}),
    };
    format!("{answer}\n")
}

/// The result or the error an answer line carries.
fn parse_answer(line: &str) -> Result<Value, String> {
    let v: Value =
        serde_json::from_str(line).map_err(|_| "the server gave no answer".to_string())?;
    if v["ok"] == true {
        Ok(v["result"].clone())
    } else {
        Err(v["error"].as_str().unwrap_or("failed").to_string())
    }
}

/// Render an answer for people: a table for a list of records, `key: value` lines for one.
pub fn render(v: &Value) -> String {
    match v {
        Value::Array(rows) if rows.iter().all(Value::is_object) && !rows.is_empty() => table(rows),
        Value::Array(rows) if rows.is_empty() => "(none)\n".into(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", cell(v)))
            .collect(),
        other => format!("{}\n", cell(other)),
    }
}

/// Non-empty `rows` of objects as aligned columns, headed by the first row's keys.
fn table(rows: &[Value]) -> String {
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

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
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

    #[test]
    fn answers_travel_as_one_json_line() {
        let ok = answer_line(Ok(json!({"bytes": 7})));
        assert_eq!(ok, "{\"ok\":true,\"result\":{\"bytes\":7}}\n");
        assert_eq!(parse_answer(&ok), Ok(json!({"bytes": 7})));
        let refused = answer_line(Err("no account with email a@b.co".into()));
        assert_eq!(
            refused,
            "{\"error\":\"no account with email a@b.co\",\"ok\":false}\n"
        );
        assert_eq!(
            parse_answer(&refused),
            Err("no account with email a@b.co".into())
        );
        assert_eq!(parse_answer(""), Err("the server gave no answer".into()));
    }
}

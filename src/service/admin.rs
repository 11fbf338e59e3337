//! Operator commands (the admin CLI), executed against a running server over its admin socket,
//! or directly against the database when the server is stopped. Both paths run `execute`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::rfc3339;
use crate::domain::account::Account;
use crate::domain::account::AccountChange;
use crate::domain::audit::{Event, EventKind, ALL_KINDS};
use crate::domain::types::Email;
use crate::service::audit;
use crate::service::state::AppState;
use crate::store::AuditQuery;

/// One operator command, as sent over the admin socket (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum AdminCommand {
    /// Every account.
    UserList,
    /// One account with its sessions and keys.
    UserShow {
        /// The account's email.
        email: String,
    },
    /// Disable an account: logins, tokens and keys are refused; sessions end.
    UserDisable {
        /// The account's email.
        email: String,
    },
    /// Enable an account again.
    UserEnable {
        /// The account's email.
        email: String,
    },
    /// Set an account's plan.
    UserSetPlan {
        /// The account's email.
        email: String,
        /// The new plan.
        plan: String,
    },
    /// Turn an account's two-factor authentication off.
    UserReset2fa {
        /// The account's email.
        email: String,
    },
    /// Mark an account's email verified.
    UserVerifyEmail {
        /// The account's email.
        email: String,
    },
    /// A one-time password-reset link for an account, printed rather than mailed.
    UserResetPassword {
        /// The account's email.
        email: String,
    },
    /// Delete an account with its sessions, API keys and two-factor state.
    UserDelete {
        /// The account's email.
        email: String,
    },
    /// The signing keys.
    KeysList,
    /// Sign new tokens with a new key.
    KeysRotate,
    /// Write a consistent snapshot of the database to `path` (absolute, must not exist).
    Backup {
        /// Where to write it.
        path: String,
    },
    /// Write every record as JSON lines to `path` (absolute, must not exist).
    Export {
        /// Where to write it.
        path: String,
    },
    /// Audit entries, newest first, filtered.
    AuditList {
        /// Only this account's (by its email, or a deleted account's last one).
        user: Option<String>,
        /// Only of this type.
        kind: Option<String>,
        /// Only at or after this Unix time.
        since: Option<i64>,
        /// At most this many.
        limit: usize,
    },
    /// Audit entries oldest first, numbered above `after`: the export's pages.
    AuditPage {
        /// The last entry of the previous page.
        after: Option<u64>,
        /// At most this many.
        limit: usize,
    },
    /// Walk the hash chain; with a checkpoint (JSON text), also check the log up to it.
    AuditVerify {
        /// A checkpoint printed by `audit checkpoint`.
        checkpoint: Option<String>,
    },
    /// The log's head signed with the current signing key.
    AuditCheckpoint,
    /// Prune entries past `audit.retention` now.
    AuditPrune,
    /// Record a restore in the restored database (run by `restore` itself).
    AuditRestored {
        /// The backup it came from.
        from: String,
    },
}

fn user_json(u: &Account) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "plan": u.plan,
        "two_factor_enabled": u.two_factor.enabled,
        "disabled": u.disabled,
        "email_verified_at": u.email_verified_at.map(rfc3339),
        "created_at": rfc3339(u.created_at),
    })
}

async fn find(state: &AppState, email: &str) -> Result<Account, String> {
    let key = Email::parse(email)
        .map_err(|_| format!("{email:?} is not an email address"))?
        .key();
    state
        .store
        .user_by_email(key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no account with email {email}"))
}

/// Run `cmd`; the answer is JSON for `--json`, and the CLI renders it as a table otherwise.
pub async fn execute(state: &AppState, cmd: AdminCommand) -> Result<Value, String> {
    match cmd {
        AdminCommand::UserList => list_users(state).await,
        AdminCommand::UserShow { email } => show_user(state, &email).await,
        AdminCommand::UserDisable { email } => {
            change_account(state, &email, AccountChange::Disable).await
        }
        AdminCommand::UserEnable { email } => {
            change_account(state, &email, AccountChange::Enable).await
        }
        AdminCommand::UserSetPlan { email, plan } => {
            change_account(state, &email, set_plan(&plan)?).await
        }
        AdminCommand::UserReset2fa { email } => {
            change_account(state, &email, AccountChange::ResetTwoFactor).await
        }
        AdminCommand::UserVerifyEmail { email } => {
            let verified = AccountChange::VerifyEmail(state.now());
            change_account(state, &email, verified).await
        }
        AdminCommand::UserDelete { email } => delete_user(state, &email).await,
        AdminCommand::UserResetPassword { email } => reset_link(state, &email).await,
        AdminCommand::KeysList => keys_json(state).await,
        AdminCommand::KeysRotate => rotate_keys(state).await,
        AdminCommand::Backup { path } => backup(state, path).await,
        AdminCommand::Export { path } => {
            let path = std::path::PathBuf::from(path);
            if !path.is_absolute() {
                return Err("the export path must be absolute".into());
            }
            let moved = export_file(state, &path).await?;
            audit::backup_taken(state, &path.display().to_string(), "export").await;
            Ok(json!(moved))
        }
        AdminCommand::AuditList {
            user,
            kind,
            since,
            limit,
        } => audit_list(state, user, kind, since, limit).await,
        AdminCommand::AuditPage { after, limit } => {
            let q = AuditQuery {
                after,
                limit: limit.clamp(1, 10_000),
                ..AuditQuery::default()
            };
            audit::entries(state, q).await.map(Value::Array)
        }
        AdminCommand::AuditVerify { checkpoint } => {
            let cp = checkpoint
                .map(|text| {
                    serde_json::from_str(&text)
                        .map_err(|_| "the checkpoint is not JSON".to_string())
                })
                .transpose()?;
            audit::verify(state, cp).await
        }
        AdminCommand::AuditCheckpoint => audit::checkpoint(state).await,
        AdminCommand::AuditPrune => audit::prune(state)
            .await
            .map(|n| json!({"pruned": n}))
            .map_err(|e| e.to_string()),
        AdminCommand::AuditRestored { from } => audit::restored(state, &from).await,
    }
}

async fn audit_list(
    state: &AppState,
    user: Option<String>,
    kind: Option<String>,
    since: Option<i64>,
    limit: usize,
) -> Result<Value, String> {
    let kind = kind
        .map(|k| {
            EventKind::parse(&k).ok_or_else(|| {
                let known: Vec<&str> = ALL_KINDS.iter().map(|k| k.as_str()).collect();
                format!("unknown event type {k:?}; one of: {}", known.join(", "))
            })
        })
        .transpose()?;
    let user_id = match user {
        Some(email) => Some(user_id_of(state, &email).await?),
        None => None,
    };
    let q = AuditQuery {
        user_id,
        kind,
        since,
        newest_first: true,
        limit: limit.clamp(1, 100_000),
        ..AuditQuery::default()
    };
    // The chain's hashes are for `export` and `verify`; a listing is for people.
    let mut rows = audit::entries(state, q).await?;
    for row in &mut rows {
        if let Some(o) = row.as_object_mut() {
            for k in ["seq", "prev", "hash"] {
                o.remove(k);
            }
        }
    }
    Ok(Value::Array(rows))
}

/// The account id behind `email`: the live account's, or else the one its last registration
/// or deletion recorded (an auditor asks about deleted accounts too).
async fn user_id_of(state: &AppState, email: &str) -> Result<String, String> {
    if let Ok(user) = find(state, email).await {
        return Ok(user.id);
    }
    let wanted = email.trim().to_ascii_lowercase();
    let q = AuditQuery {
        newest_first: true,
        limit: usize::MAX,
        ..AuditQuery::default()
    };
    let all = state
        .store
        .audit_entries(q)
        .await
        .map_err(|e| e.to_string())?;
    all.iter()
        .filter(|e| {
            matches!(
                e.event.kind,
                EventKind::Register | EventKind::AccountDeleted
            )
        })
        .find(|e| {
            e.event
                .detail
                .iter()
                .any(|(k, v)| k == "email" && v.to_ascii_lowercase() == wanted)
        })
        .and_then(|e| e.event.user_id.clone())
        .ok_or_else(|| format!("no account or audit entry with email {email}"))
}

/// The plan change for `plan`, refused before any account is looked up.
fn set_plan(plan: &str) -> Result<AccountChange, String> {
    if plan.trim().is_empty() || plan.len() > 64 {
        return Err("a plan is 1 to 64 characters".into());
    }
    Ok(AccountChange::SetPlan(plan.trim().to_string()))
}

async fn change_account(
    state: &AppState,
    email: &str,
    change: AccountChange,
) -> Result<Value, String> {
    let user = find(state, email).await?;
    let event = Event::by_admin(change.event_kind(), state.now());
    let after = state
        .store
        .change_user(user.id, change.clone(), event)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(user_id = %after.id, change = ?change, "account changed by an operator");
    Ok(user_json(&after))
}

async fn reset_link(state: &AppState, email: &str) -> Result<Value, String> {
    let user = find(state, email).await?;
    let link = crate::service::email::reset_link(state, &user)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(user_id = %user.id, "reset link made by an operator");
    Ok(json!({"email": user.email, "reset_link": link}))
}

async fn delete_user(state: &AppState, email: &str) -> Result<Value, String> {
    let user = find(state, email).await?;
    state
        .store
        .delete_account(
            user.id.clone(),
            crate::store::DeleteBy::Operator,
            Event::by_admin(EventKind::AccountDeleted, state.now()),
        )
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(user_id = %user.id, "account deleted by an operator");
    Ok(json!({"deleted": user.email, "id": user.id}))
}

async fn list_users(state: &AppState) -> Result<Value, String> {
    let users = state.store.list_users().await.map_err(|e| e.to_string())?;
    Ok(Value::Array(users.iter().map(user_json).collect()))
}

async fn show_user(state: &AppState, email: &str) -> Result<Value, String> {
    let user = find(state, email).await?;
    let now = state.now();
    let sessions = state
        .store
        .list_sessions(user.id.clone(), now)
        .await
        .map_err(|e| e.to_string())?;
    let keys = state
        .store
        .list_api_keys(user.id.clone(), now)
        .await
        .map_err(|e| e.to_string())?;
    let mut v = user_json(&user);
    v["company"] = json!(user.company);
    v["sessions"] = json!(sessions.len());
    v["api_keys"] = json!(keys.len());
    Ok(v)
}

async fn rotate_keys(state: &AppState) -> Result<Value, String> {
    let _one_at_a_time = state.rotation.lock().await;
    let stored = state
        .store
        .rotate_signing_key(
            state.now(),
            state.config.key_keep_for(),
            Event::by_admin(EventKind::SigningKeyRotated, state.now()),
        )
        .await
        .map_err(|e| e.to_string())?;
    state.set_keys(stored).map_err(|e| e.to_string())?;
    tracing::info!(kid = %state.keyring().active().kid(), "signing key rotated by an operator");
    keys_json(state).await
}

async fn backup(state: &AppState, path: String) -> Result<Value, String> {
    let path = std::path::PathBuf::from(path);
    if !path.is_absolute() {
        return Err("the backup path must be absolute".into());
    }
    state
        .store
        .backup_to(path.clone())
        .await
        .map_err(|e| e.to_string())?;
    audit::backup_taken(state, &path.display().to_string(), "snapshot").await;
    Ok(json!({"backup": path.display().to_string()}))
}

async fn keys_json(state: &AppState) -> Result<Value, String> {
    let stored = state
        .store
        .signing_keys_or_create(state.now(), state.config.key_keep_for())
        .await
        .map_err(|e| e.to_string())?;
    let active = state.keyring().active().kid().to_string();
    Ok(Value::Array(
        stored
            .iter()
            .map(|k| {
                json!({
                    "kid": k.pair.kid(),
                    "created_at": rfc3339(k.created_at),
                    "retired_at": k.retired_at.map(rfc3339),
                    "signing": k.pair.kid() == active,
                })
            })
            .collect(),
    ))
}

/// Write an export of every record to `path`, a new 0600 file, off the async workers.
pub async fn export_file(
    state: &AppState,
    path: &std::path::Path,
) -> Result<crate::store::Moved, String> {
    let (store, path, now) = (state.store.clone(), path.to_path_buf(), state.now());
    crate::blocking::run(move || {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let moved = store.export_to(&mut out, now).map_err(|e| e.to_string())?;
        let file = out.into_inner().map_err(|e| format!("export: {e}"))?;
        file.sync_all().map_err(|e| format!("export: {e}"))?;
        Ok(moved)
    })
    .await
    .map_err(|_| "shutting down".to_string())?
}

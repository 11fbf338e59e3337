//! The audit log's use cases: the events other use cases hand the store with their changes
//! (built here), the events that go with no change (failed logins, backups, restores), a user's
//! activity page, and the operator's list, verify, checkpoint and prune.

use std::sync::Arc;

use data_encoding::HEXLOWER;
use serde_json::{json, Value};

use crate::clock::{rfc3339, UnixTime};
use crate::crypto::keys::verify_detached;
use crate::domain::account::Account;
use crate::domain::audit::{checkpoint_message, Entry, Event, EventKind, LoginFailure};
use crate::domain::models::{ClientInfo, SessionCaller};
use crate::error::Error;
use crate::service::state::AppState;
use crate::store::{AuditQuery, AuditWalk};

/// Entries pruned per transaction, so pruning a large backlog never holds the writer long.
const PRUNE_BATCH: usize = 1000;
/// How often the server prunes on its own.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// An event of the caller's, in their current session.
pub fn in_session(
    state: &AppState,
    kind: EventKind,
    who: &SessionCaller,
    client: &ClientInfo,
) -> Event {
    Event::by_user(kind, state.now(), client)
        .user(&who.user.id)
        .session(&who.session_id)
}

/// The recorded reason of a refused login, for the errors that have one.
pub fn login_failure(e: &Error) -> Option<LoginFailure> {
    match e {
        Error::InvalidCredentials => Some(LoginFailure::WrongPassword),
        Error::InvalidTotpCode => Some(LoginFailure::WrongCode),
        Error::TotpRequired => Some(LoginFailure::MissingCode),
        Error::AccountDisabled => Some(LoginFailure::Disabled),
        Error::EmailNotVerified => Some(LoginFailure::EmailNotVerified),
        _ => None,
    }
}

/// Record a refused login of a known account (with the lock it caused, if any) in one small
/// write before the refusal is answered. A failure to record is logged, not answered: the
/// refusal stands either way.
pub async fn login_failed(
    state: &AppState,
    account: &Account,
    reason: LoginFailure,
    client: &ClientInfo,
    locked_now: bool,
) {
    let failed = Event::by_user(EventKind::LoginFailed, state.now(), client)
        .user(&account.id)
        .detail("reason", reason.as_str());
    let mut events = vec![failed];
    if locked_now {
        let locked = Event {
            actor: crate::domain::audit::Actor::System,
            ..events[0].also(EventKind::AccountLocked)
        };
        events.push(locked);
    }
    if let Err(e) = state.store.record_events(events).await {
        tracing::error!(user_id = %account.id, error = %e, "could not record a failed login");
    }
}

/// One page of the caller's own events, newest first, below the cursor `before` (an event id);
/// and the cursor of the next page, if there is one.
pub async fn activity(
    state: &AppState,
    who: &SessionCaller,
    limit: usize,
    before: Option<u64>,
) -> Result<(Vec<Entry>, Option<String>), Error> {
    let (entries, more) = state
        .store
        .activity(who.user.id.clone(), before, limit)
        .await?;
    let next = more.then(|| entries.last().map(Entry::id)).flatten();
    Ok((entries, next))
}

/// Record an operator's backup (`kind`: a `snapshot` or an `export`), after it was taken (a
/// backup never holds its own record).
pub async fn backup_taken(state: &AppState, destination: &str, kind: &str) {
    let event = Event::by_admin(EventKind::BackupTaken, state.now())
        .detail("to", destination)
        .detail("kind", kind);
    if let Err(e) = state.store.record_events(vec![event]).await {
        tracing::error!(error = %e, "could not record a backup");
    }
}

/// Record that the database was just restored from `from`: the first entry the restored log
/// gains.
pub async fn restored(state: &AppState, from: &str) -> Result<Value, String> {
    let event = Event::by_admin(EventKind::Restored, state.now()).detail("from", from);
    state
        .store
        .record_events(vec![event])
        .await
        .map_err(|e| e.to_string())?;
    Ok(json!({"recorded": "restored", "from": from}))
}

/// Prune what is older than `audit.retention` (nothing when it is zero). The count pruned.
pub async fn prune(state: &AppState) -> Result<u64, Error> {
    let keep = state.config.audit.retention;
    if keep.is_zero() {
        return Ok(0);
    }
    let before = state.now() - crate::clock::secs(keep);
    let mut total = 0;
    loop {
        let n = state.store.prune_audit(before, PRUNE_BATCH).await?;
        total += n;
        if n < PRUNE_BATCH as u64 {
            break;
        }
    }
    if total > 0 {
        tracing::info!(pruned = total, "audit entries past their retention pruned");
    }
    Ok(total)
}

/// Prune at start and then hourly until the server stops.
pub async fn prune_periodically(state: Arc<AppState>) {
    crate::service::state::every(state, PRUNE_EVERY, |state| async move {
        if let Err(e) = prune(&state).await {
            tracing::error!(error = %e, "could not prune the audit log");
        }
    })
    .await;
}

/// An entry for operators (CLI tables, `--json`, the JSONL export): every field, hashes in hex.
pub fn entry_json(e: &Entry) -> Value {
    let ev = &e.event;
    let detail: serde_json::Map<String, Value> = ev
        .detail
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "id": e.id(),
        "seq": e.seq,
        "at": rfc3339(ev.at),
        "type": ev.kind.as_str(),
        "user_id": ev.user_id,
        "actor": ev.actor.as_str(),
        "ip": ev.ip,
        "user_agent": ev.user_agent,
        "session_id": ev.session_id,
        "key_id": ev.key_id,
        "detail": detail,
        "prev": HEXLOWER.encode(&e.prev),
        "hash": HEXLOWER.encode(&e.hash),
    })
}

/// Entries as an operator asked for them.
pub async fn entries(state: &AppState, q: AuditQuery) -> Result<Vec<Value>, String> {
    let found = state
        .store
        .audit_entries(q)
        .await
        .map_err(|e| e.to_string())?;
    Ok(found.iter().map(entry_json).collect())
}

/// Walk the chain; with a `checkpoint` (as `checkpoint` printed it) also prove the log up to
/// it unchanged. `Err` names the first broken entry or why the checkpoint does not hold.
pub async fn verify(state: &AppState, checkpoint: Option<Value>) -> Result<Value, String> {
    let cp = checkpoint.as_ref().map(parse_checkpoint).transpose()?;
    let walk = state
        .store
        .walk_audit(cp.as_ref().map(|c| c.seq))
        .await
        .map_err(|e| e.to_string())?;
    if let Some(b) = &walk.broken {
        return Err(format!(
            "the audit log is broken at entry ev-{}: {} ({} entries before it verified)",
            b.seq, b.why, walk.count
        ));
    }
    let mut out = json!({
        "verified": walk.count,
        "head": format!("ev-{}", walk.head_seq),
        "head_hash": HEXLOWER.encode(&walk.head),
        "pruned": walk.anchor.map_or(0, |a| a.pruned),
    });
    if let Some(cp) = cp {
        check_against(state, &cp, &walk)?;
        out["checkpoint"] = json!(format!("ev-{} matches", cp.seq));
    }
    Ok(out)
}

/// The head of the log signed with the current signing key: store it elsewhere, and
/// `verify --checkpoint` later proves the log up to it was not rewritten.
pub async fn checkpoint(state: &AppState) -> Result<Value, String> {
    let walk = state
        .store
        .walk_audit(None)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(b) = walk.broken {
        return Err(format!(
            "the audit log is broken at entry ev-{}: {}; no checkpoint signed",
            b.seq, b.why
        ));
    }
    let at = state.now();
    let hash = HEXLOWER.encode(&walk.head);
    let keyring = state.keyring();
    let key = keyring.active();
    let signature =
        crate::crypto::jwt::sign_input(key, &checkpoint_message(walk.head_seq, &hash, at));
    let jwk = key.public_jwk();
    Ok(json!({
        "format": "cloudheed-auth audit checkpoint v1",
        "seq": walk.head_seq,
        "hash": hash,
        "at": at,
        "kid": jwk.kid,
        "public_key": jwk.x,
        "signature": signature,
    }))
}

struct Checkpoint {
    seq: u64,
    hash: [u8; 32],
    hash_hex: String,
    at: UnixTime,
    kid: String,
    public_key: String,
    signature: String,
}

fn parse_checkpoint(v: &Value) -> Result<Checkpoint, String> {
    let bad = |what: &str| format!("not a checkpoint: {what}");
    let text = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(&format!("no {k}")))
    };
    let hash_hex = text("hash")?;
    let hash = HEXLOWER
        .decode(hash_hex.as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| bad("hash is not 64 hex digits"))?;
    Ok(Checkpoint {
        seq: v["seq"].as_u64().ok_or_else(|| bad("no seq"))?,
        hash,
        hash_hex,
        at: v["at"].as_i64().ok_or_else(|| bad("no at"))?,
        kid: text("kid")?,
        public_key: text("public_key")?,
        signature: text("signature")?,
    })
}

fn check_against(state: &AppState, cp: &Checkpoint, walk: &AuditWalk) -> Result<(), String> {
    let message = checkpoint_message(cp.seq, &cp.hash_hex, cp.at);
    if !verify_detached(
        &cp.public_key,
        Some(&cp.kid),
        message.as_bytes(),
        &cp.signature,
    ) {
        return Err("the checkpoint's signature does not verify".into());
    }
    // A key still in the keyring must be the one the checkpoint names: a checkpoint signed with
    // some other key proves nothing about this server.
    let keyring = state.keyring();
    if let Some(known) = keyring
        .jwks(state.now())
        .into_iter()
        .find(|k| k.kid == cp.kid)
    {
        if known.x != cp.public_key {
            return Err("the checkpoint's key is not this server's".into());
        }
    }
    match walk.hash_at {
        Some(h) if h == cp.hash => Ok(()),
        Some(_) => Err(format!(
            "entry ev-{} differs from the checkpoint: the log up to it was rewritten",
            cp.seq
        )),
        None => match walk.anchor {
            Some(a) if a.seq == cp.seq && a.hash == cp.hash => Ok(()),
            Some(a) if a.seq >= cp.seq => Err(format!(
                "entry ev-{} was pruned (retention); this checkpoint can no longer be checked",
                cp.seq
            )),
            _ => Err(format!(
                "the log ends at entry ev-{}, before the checkpoint's ev-{}: entries were removed",
                walk.head_seq, cp.seq
            )),
        },
    }
}

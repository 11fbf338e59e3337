//! Rows of the PostgreSQL backend, read and written inside one transaction (or on one
//! connection): accounts, sessions with their refresh tokens, API keys, mail tokens, queued
//! mail and audit entries, as the records `records.rs` defines.

use tokio_postgres::GenericClient;

use crate::clock::UnixTime;
use crate::crypto::random::sha256;
use crate::domain::account::Account;
use crate::domain::audit::Event;
use crate::domain::mail::{OutgoingMail, QueuedMail, TokenKind};

use super::super::records::{
    decode, decode_user, encode, encode_user, ApiKeyRecord, AuditAnchorRecord, AuditRecord,
    MailTokenRecord, OutboxRecord, SessionRecord,
};
use super::super::sessions::NewSession;
use super::super::StoreError;

/// The account `id`, if there is one.
pub(super) async fn find_user(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<Account>, StoreError> {
    let row = c
        .query_opt("SELECT record FROM users WHERE id = $1", &[&id])
        .await?;
    row.map(|r| decode_user(r.get::<_, &[u8]>(0))).transpose()
}

/// The account `id`; a dangling reference to a missing one is damage.
pub(super) async fn get_user(c: &impl GenericClient, id: &str) -> Result<Account, StoreError> {
    find_user(c, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("missing user {id}")))
}

pub(super) async fn put_user(c: &impl GenericClient, user: &Account) -> Result<(), StoreError> {
    let record = encode_user(user)?;
    let key = user.email.to_ascii_lowercase();
    c.execute(
        "INSERT INTO users (id, email_key, record) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET email_key = EXCLUDED.email_key, record = EXCLUDED.record",
        &[&user.id, &key, &record],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_user(c: &impl GenericClient, id: &str) -> Result<(), StoreError> {
    c.execute("DELETE FROM users WHERE id = $1", &[&id]).await?;
    Ok(())
}

pub(super) async fn get_session(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    let row = c
        .query_opt("SELECT record FROM sessions WHERE id = $1", &[&id])
        .await?;
    row.map(|r| decode("sessions", r.get::<_, &[u8]>(0)))
        .transpose()
}

pub(super) async fn put_session(
    c: &impl GenericClient,
    s: &SessionRecord,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO sessions (id, user_id, created_at, expires_at, record)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record, expires_at = EXCLUDED.expires_at",
        &[&s.id, &s.user_id, &s.created_at, &s.expires_at, &encode(s)?],
    )
    .await?;
    Ok(())
}

/// Delete a session with every refresh token pointing at it.
pub(super) async fn delete_session(
    c: &impl GenericClient,
    s: &SessionRecord,
) -> Result<(), StoreError> {
    c.execute("DELETE FROM refresh_tokens WHERE session_id = $1", &[&s.id])
        .await?;
    c.execute("DELETE FROM sessions WHERE id = $1", &[&s.id])
        .await?;
    Ok(())
}

/// A user's sessions, oldest first.
pub(super) async fn sessions_of(
    c: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<SessionRecord>, StoreError> {
    let rows = c
        .query(
            "SELECT record FROM sessions WHERE user_id = $1 ORDER BY created_at, id",
            &[&user_id],
        )
        .await?;
    rows.iter()
        .map(|r| decode("sessions", r.get::<_, &[u8]>(0)))
        .collect()
}

/// Delete the user's sessions for which `doomed` says so.
pub(super) async fn delete_sessions_where(
    c: &impl GenericClient,
    user_id: &str,
    doomed: impl Fn(&SessionRecord) -> bool,
) -> Result<(), StoreError> {
    for s in sessions_of(c, user_id).await? {
        if doomed(&s) {
            delete_session(c, &s).await?;
        }
    }
    Ok(())
}

/// Open a session: first its user's expired ones end, and the oldest beyond `keep_at_most`.
pub(super) async fn insert_session(
    c: &impl GenericClient,
    s: NewSession,
) -> Result<(), StoreError> {
    let held = sessions_of(c, &s.user_id).await?;
    let mut excess = (held.len() + 1).saturating_sub(s.keep_at_most.max(1));
    for old in &held {
        if excess == 0 && s.now < old.expires_at {
            break;
        }
        excess = excess.saturating_sub(1);
        delete_session(c, old).await?;
    }
    let record = s.into_record();
    c.execute(
        "INSERT INTO refresh_tokens (hash, session_id) VALUES ($1, $2)",
        &[&record.current_hash.as_slice(), &record.id],
    )
    .await?;
    put_session(c, &record).await
}

/// A user's keys, expired ones included.
pub(super) async fn keys_of(
    c: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let rows = c
        .query(
            "SELECT record FROM api_keys WHERE user_id = $1",
            &[&user_id],
        )
        .await?;
    rows.iter()
        .map(|r| decode("api_keys", r.get::<_, &[u8]>(0)))
        .collect()
}

pub(super) async fn put_key(c: &impl GenericClient, k: &ApiKeyRecord) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO api_keys (hash, id, user_id, record) VALUES ($1, $2, $3, $4)
         ON CONFLICT (hash) DO UPDATE SET record = EXCLUDED.record",
        &[&k.hash.as_slice(), &k.id, &k.user_id, &encode(k)?],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_key(c: &impl GenericClient, k: &ApiKeyRecord) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM api_keys WHERE hash = $1",
        &[&k.hash.as_slice()],
    )
    .await?;
    Ok(())
}

fn latest_key(user_id: &str, kind: TokenKind) -> String {
    format!("{user_id}/{}", kind.as_str())
}

/// Keep a mail token, voiding the user's previous one of its kind.
pub(super) async fn put_mail_token(
    c: &impl GenericClient,
    hash: &[u8; 32],
    record: &MailTokenRecord,
    kind: TokenKind,
) -> Result<(), StoreError> {
    let key = latest_key(&record.user_id, kind);
    let previous: Option<Vec<u8>> = c
        .query_opt("SELECT hash FROM latest_mail_token WHERE key = $1", &[&key])
        .await?
        .map(|r| r.get(0));
    if let Some(previous) = previous {
        c.execute("DELETE FROM mail_tokens WHERE hash = $1", &[&previous])
            .await?;
    }
    c.execute(
        "INSERT INTO mail_tokens (hash, record) VALUES ($1, $2)",
        &[&hash.as_slice(), &encode(record)?],
    )
    .await?;
    c.execute(
        "INSERT INTO latest_mail_token (key, hash) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET hash = EXCLUDED.hash",
        &[&key, &hash.as_slice()],
    )
    .await?;
    Ok(())
}

async fn mail_token(
    c: &impl GenericClient,
    hash: &[u8; 32],
) -> Result<Option<MailTokenRecord>, StoreError> {
    let row = c
        .query_opt(
            "SELECT record FROM mail_tokens WHERE hash = $1",
            &[&hash.as_slice()],
        )
        .await?;
    row.map(|r| decode("mail_tokens", r.get::<_, &[u8]>(0)))
        .transpose()
}

/// The live token of `kind` with this hash, left in place.
pub(super) async fn peek_token(
    c: &impl GenericClient,
    hash: &[u8; 32],
    kind: TokenKind,
    now: UnixTime,
) -> Result<Option<MailTokenRecord>, StoreError> {
    Ok(mail_token(c, hash)
        .await?
        .filter(|t| t.kind == kind.as_str() && now < t.expires_at))
}

/// Remove and return the live token of `kind` with this hash; an expired one is removed too,
/// and refused.
pub(super) async fn take_token(
    c: &impl GenericClient,
    hash: &[u8; 32],
    kind: TokenKind,
    now: UnixTime,
) -> Result<Option<MailTokenRecord>, StoreError> {
    let Some(token) = mail_token(c, hash).await? else {
        return Ok(None);
    };
    if token.kind != kind.as_str() {
        return Ok(None);
    }
    c.execute(
        "DELETE FROM mail_tokens WHERE hash = $1",
        &[&hash.as_slice()],
    )
    .await?;
    c.execute(
        "DELETE FROM latest_mail_token WHERE key = $1 AND hash = $2",
        &[&latest_key(&token.user_id, kind), &hash.as_slice()],
    )
    .await?;
    Ok((now < token.expires_at).then_some(token))
}

/// Queue `mail` inside the caller's transaction; its id.
pub(super) async fn queue_mail(
    c: &impl GenericClient,
    mail: &OutgoingMail,
    now: UnixTime,
) -> Result<String, StoreError> {
    let queued = QueuedMail {
        id: crate::crypto::random::id("mail-"),
        mail: mail.clone(),
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
    };
    put_mail(c, &queued).await?;
    Ok(queued.id)
}

pub(super) async fn put_mail(c: &impl GenericClient, q: &QueuedMail) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO outbox (id, next_attempt_at, record) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET next_attempt_at = EXCLUDED.next_attempt_at,
             record = EXCLUDED.record",
        &[&q.id, &q.next_attempt_at, &encode(&OutboxRecord::from(q))?],
    )
    .await?;
    Ok(())
}

pub(super) async fn anchor(
    c: &impl GenericClient,
) -> Result<Option<AuditAnchorRecord>, StoreError> {
    let row = c
        .query_opt("SELECT record FROM audit_meta WHERE name = 'anchor'", &[])
        .await?;
    row.map(|r| decode("audit_meta", r.get::<_, &[u8]>(0)))
        .transpose()
}

/// Append `events` to the audit chain inside the caller's (write-locked) transaction.
pub(super) async fn append(c: &impl GenericClient, events: &[Event]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let last = c
        .query_opt(
            "SELECT seq, record FROM audit ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
    let (mut seq, mut prev) = match last {
        Some(r) => (r.get::<_, i64>(0) as u64, sha256(r.get::<_, &[u8]>(1))),
        None => match anchor(c).await? {
            Some(a) => (a.seq, a.hash),
            None => (0, [0; 32]),
        },
    };
    for e in events {
        seq += 1;
        let bytes = encode(&AuditRecord::new(e, seq, prev))?;
        c.execute(
            "INSERT INTO audit (seq, user_id, record) VALUES ($1, $2, $3)",
            &[&(seq as i64), &e.user_id, &bytes],
        )
        .await?;
        prev = sha256(&bytes);
    }
    Ok(())
}

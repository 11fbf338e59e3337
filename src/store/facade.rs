//! `Store`: the one use-case API the services call, over whichever backend the config chose —
//! the embedded redb file or PostgreSQL. Each operation has the same meaning on both (one
//! transaction, the domain's rules inside it, durable when it returns `Ok`); this file only
//! dispatches.

use std::io::{BufRead, Write};
use std::sync::Arc;

use crate::clock::UnixTime;
use crate::domain::account::{Account, AccountChange, SecondFactorUse};
use crate::domain::audit::{Entry, Event};
use crate::domain::mail::{AfterFailure, OutgoingMail, QueuedMail};
use crate::domain::models::{ApiKey, Session};
use crate::secret::{Secret, SecretBytes};

use super::pg::PgStore;
use super::{
    AuditQuery, AuditWalk, Confirmed, CreateOutcome, DeleteBy, DeleteOutcome, DisableOutcome,
    EmailChange, EnableOutcome, KeyCreateOutcome, MailTokenReset, MailTokenVerified, Moved,
    NewMailToken, NewSession, NewUser, RedbStore, Rotation, SetupOutcome, StartOutcome, StoreError,
    StoredKey, Tamper,
};

/// The store the services use; cheap to clone.
#[derive(Clone, Debug)]
pub enum Store {
    /// One redb file in the data dir (the default).
    Redb(RedbStore),
    /// A PostgreSQL database, which several instances may share.
    Postgres(PgStore),
}

impl Store {
    /// Open (or create) the redb database at `path`; see [`RedbStore::open`]. Blocking.
    pub fn open(path: &std::path::Path) -> Result<Store, StoreError> {
        RedbStore::open(path).map(Store::Redb)
    }

    /// Sessions and API keys held by the read-through caches.
    pub fn cached(&self) -> (usize, usize) {
        match self {
            Store::Redb(s) => s.cached(),
            Store::Postgres(s) => s.cached(),
        }
    }

    /// Write every record to `out`; blocking (see `export`).
    pub fn export_to(&self, out: &mut impl Write, now: i64) -> Result<Moved, StoreError> {
        match self {
            Store::Redb(s) => s.export_to(out, now),
            Store::Postgres(s) => s.export_to(out, now),
        }
    }

    /// Fill an empty database from an export; blocking (see `export`).
    pub fn import_from(&self, input: impl BufRead) -> Result<Moved, StoreError> {
        match self {
            Store::Redb(s) => s.import_from(input),
            Store::Postgres(s) => s.import_from(input),
        }
    }

    /// Open the store `config` names: the redb file at `db_path` (created on first start, with
    /// read-through caches of `caches` sessions and keys), or the PostgreSQL database at
    /// `store.url` (or the URL in `store.url_file`), migrated.
    pub async fn open_configured(
        config: &crate::config::StoreConfig,
        db_path: &std::path::Path,
        caches: (usize, usize),
    ) -> Result<Store, StoreError> {
        match config.backend {
            crate::config::StoreBackend::Redb => {
                let path = db_path.to_path_buf();
                crate::blocking::run(move || RedbStore::open_with_caches(&path, caches.0, caches.1))
                    .await
                    .map_err(|_| StoreError::Cancelled)?
                    .map(Store::Redb)
            }
            crate::config::StoreBackend::Postgres => {
                let url = match (&config.url, &config.url_file) {
                    (Some(url), _) => url.clone(),
                    (None, Some(file)) => std::fs::read_to_string(file)
                        .map(|s| s.trim().to_string())
                        .map_err(|e| {
                            StoreError::Setup(format!(
                                "cannot read store.url_file {}: {e}",
                                file.display()
                            ))
                        })?,
                    (None, None) => {
                        return Err(StoreError::Setup(
                            "backend = \"postgres\" needs store.url or store.url_file".into(),
                        ))
                    }
                };
                PgStore::connect(&url, config.pool_size, caches, config.ca_file.as_deref())
                    .await
                    .map(Store::Postgres)
            }
        }
    }

    /// The bytes the data take: the redb file at `db_path`, or this schema's tables.
    pub async fn size_bytes(&self, db_path: &std::path::Path) -> u64 {
        match self {
            Store::Redb(_) => std::fs::metadata(db_path).map_or(0, |m| m.len()),
            Store::Postgres(s) => s.size_bytes().await.unwrap_or(0),
        }
    }

    /// Whether the database is the redb file (which backup and restore copy).
    pub fn is_redb(&self) -> bool {
        matches!(self, Store::Redb(_))
    }

    /// Keep a rotated-out token's sealed successor for the other instances (a shared database
    /// only: one redb process keeps it in memory).
    pub async fn remember_grace(
        &self,
        presented: [u8; 32],
        sealed: Vec<u8>,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        match self {
            Store::Redb(_) => Ok(()),
            Store::Postgres(s) => s.remember_grace(presented, sealed, now, expires_at).await,
        }
    }

    /// A rotated-out token's sealed successor, kept by another instance.
    pub async fn grace_successor(
        &self,
        presented: [u8; 32],
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Redb(_) => Ok(None),
            Store::Postgres(s) => s.grace_successor(presented, now).await,
        }
    }

    /// Update limit state every instance shares; `None` on redb, whose one process keeps its
    /// limits in memory.
    pub async fn update_shared<R>(
        &self,
        key: String,
        now: UnixTime,
        f: impl FnOnce(Option<&[u8]>) -> (Vec<u8>, R),
    ) -> Result<Option<R>, StoreError> {
        match self {
            Store::Redb(_) => Ok(None),
            Store::Postgres(s) => s.update_shared(key, now, f).await.map(Some),
        }
    }

    /// Shared limit state; `None` on redb.
    pub async fn read_shared(&self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Redb(_) => Ok(None),
            Store::Postgres(s) => s.read_shared(key).await,
        }
    }

    /// Whether the database answers now (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Redb(s) => s.schema_version().await.map(drop),
            Store::Postgres(s) => s.ping().await,
        }
    }
}

/// The use-case operations, each forwarded to the backend's method of the same name.
macro_rules! forward {
    ($( $(#[$m:meta])* fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$m])*
                pub async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    match self {
                        Store::Redb(s) => s.$name($($arg),*).await,
                        Store::Postgres(s) => s.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

forward! {
    /// Every account, oldest first.
    fn list_users(&self) -> Vec<Account>;
    /// An operator's change to an account, recorded by `event`.
    fn change_user(&self, user_id: String, change: AccountChange, event: Event) -> Account;
    /// A new API key, within the per-user limit.
    fn create_api_key(&self, key: ApiKey, max_per_user: usize, event: Event) -> KeyCreateOutcome;
    /// A user's live keys, newest first.
    fn list_api_keys(&self, user_id: String, now: UnixTime) -> Vec<ApiKey>;
    /// Revoke one of a user's keys.
    fn revoke_api_key(&self, user_id: String, key_id: String, event: Event) -> bool;
    /// The live key with this hash and its owner.
    fn api_key_with_user(&self, hash: [u8; 32], now: UnixTime) -> Option<Arc<(ApiKey, Account)>>;
    /// Record when keys were last used.
    fn record_api_key_use(&self, uses: Vec<([u8; 32], UnixTime)>) -> ();
    /// Events that go with no other change.
    fn record_events(&self, events: Vec<Event>) -> ();
    /// A user's events, newest first, below `before`.
    fn activity(&self, user_id: String, before: Option<u64>, limit: usize) -> (Vec<Entry>, bool);
    /// Audit entries for an operator.
    fn audit_entries(&self, q: AuditQuery) -> Vec<Entry>;
    /// Walk and check the audit chain.
    fn walk_audit(&self, hash_of: Option<u64>) -> AuditWalk;
    /// Prune audit entries older than `before`.
    fn prune_audit(&self, before: UnixTime, max: usize) -> u64;
    /// Damage the audit log, for tests of `audit verify`.
    #[doc(hidden)]
    fn tamper_audit(&self, seq: u64, how: Tamper) -> ();
    /// The signing keys in use, read without writing anything.
    fn signing_keys(&self, now: UnixTime, keep_for: i64) -> Vec<StoredKey>;
    /// The signing keys in use; the first is created on first start.
    fn signing_keys_or_create(&self, now: UnixTime, keep_for: i64) -> Vec<StoredKey>;
    /// Retire the signing key and make a new one.
    fn rotate_signing_key(&self, now: UnixTime, keep_for: i64, event: Event) -> Vec<StoredKey>;
    /// Keep a mail token (voiding the user's older one of its kind) with its mail.
    fn issue_mail_token(&self, t: NewMailToken, now: UnixTime) -> ();
    /// Use a verification token.
    fn verify_email_with(&self, hash: [u8; 32], now: UnixTime, event: Event) -> MailTokenVerified;
    /// The account a live reset token belongs to.
    fn reset_token_account(&self, hash: [u8; 32], now: UnixTime) -> Option<Account>;
    /// Use a reset token.
    fn reset_password_with(
        &self,
        hash: [u8; 32],
        new_hash: Secret,
        used: Option<SecondFactorUse>,
        now: UnixTime,
        event: Event
    ) -> MailTokenReset;
    /// Use an email-change token.
    fn change_email_with(&self, hash: [u8; 32], now: UnixTime, event: Event) -> EmailChange;
    /// A consistent copy of the database (redb only).
    fn backup_to(&self, out: std::path::PathBuf) -> ();
    /// The schema version.
    fn schema_version(&self) -> u64;
    /// Users, sessions and API keys stored.
    fn counts(&self) -> (u64, u64, u64);
    /// Queue a mail on its own.
    fn queue_mail(&self, mail: OutgoingMail, now: UnixTime) -> String;
    /// Mail due for delivery.
    fn due_mail(&self, now: UnixTime, limit: usize) -> Vec<QueuedMail>;
    /// A mail was handed over.
    fn mail_sent(&self, id: String) -> ();
    /// A delivery failed.
    fn mail_failed(&self, id: String, now: UnixTime, max_attempts: u32) -> Option<AfterFailure>;
    /// Mail waiting.
    fn queued_mail_count(&self) -> u64;
    /// A live session with its user.
    fn session_with_user(&self, session_id: String, now: UnixTime) -> Option<Arc<(Session, Account)>>;
    /// Whether a refresh token hash is known at all.
    fn refresh_token_known(&self, hash: [u8; 32]) -> bool;
    /// Rotate a refresh token.
    fn rotate_refresh(
        &self,
        presented: [u8; 32],
        new_hash: [u8; 32],
        now: UnixTime,
        grace_secs: i64,
        on_reuse: Event
    ) -> Rotation;
    /// End one of a user's sessions.
    fn revoke_session(&self, user_id: String, session_id: String, event: Event) -> bool;
    /// A user's live sessions, newest first.
    fn list_sessions(&self, user_id: String, now: UnixTime) -> Vec<Session>;
    /// Keep an unconfirmed TOTP secret.
    fn set_pending_totp(&self, user_id: String, secret: SecretBytes, event: Event) -> SetupOutcome;
    /// Turn two-factor authentication on.
    fn enable_totp(
        &self,
        user_id: String,
        confirmed: Confirmed,
        keep_session: String,
        event: Event
    ) -> EnableOutcome;
    /// Turn two-factor authentication off.
    fn disable_totp(&self, user_id: String, used: SecondFactorUse, event: Event) -> DisableOutcome;
    /// The whole account.
    fn user_by_id(&self, user_id: String) -> Option<Account>;
    /// Whether an account uses this email.
    fn email_taken(&self, email_key: String) -> bool;
    /// The account with this email.
    fn user_by_email(&self, email_key: String) -> Option<Account>;
    /// A new account and its first session.
    fn create_account(&self, user: NewUser, session: NewSession, events: Vec<Event>) -> CreateOutcome;
    /// Open a session after a login.
    fn start_session(
        &self,
        session: NewSession,
        rehash: Option<Secret>,
        second_factor: Option<SecondFactorUse>,
        event: Event
    ) -> StartOutcome;
    /// Replace the password hash; end every other session.
    fn change_password(&self, user_id: String, new_hash: Secret, keep_session: String, event: Event) -> ();
    /// Delete an account and everything of it.
    fn delete_account(&self, user_id: String, by: DeleteBy, event: Event) -> DeleteOutcome;
}

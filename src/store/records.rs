//! The stored forms of our data: CBOR records with a version tag, decoded by us with errors.
//!
//! Records are separate from domain models so the disk format changes on its own schedule.
//! Fields added later within a version carry `#[serde(default)]`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::domain::account::{Account, TwoFactor};
use crate::domain::lineage::Lineage;
use crate::domain::mail::{OutgoingMail, QueuedMail};
use crate::domain::models::{ApiKey, Session};
use crate::secret::{Secret, SecretBytes};

use super::StoreError;

/// The record version this build writes.
pub const RECORD_VERSION: u32 = 1;

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// Record version.
    pub v: u32,
    /// `user-` + random.
    pub id: String,
    /// As registered (trimmed).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Optional company.
    pub company: Option<String>,
    /// Plan.
    pub plan: String,
    /// scrypt PHC string; hidden from `Debug`.
    pub password_hash: Secret,
    /// Creation time.
    pub created_at: UnixTime,
    /// Email verification time.
    pub email_verified_at: Option<UnixTime>,
    /// TOTP required at login.
    #[serde(default)]
    pub two_factor_enabled: bool,
    /// Disabled by an operator.
    #[serde(default)]
    pub disabled: bool,
    /// The confirmed TOTP secret, while two-factor authentication is on. Kept recoverable: the
    /// server must compute codes from it.
    #[serde(default)]
    pub totp_secret: Option<SecretBytes>,
    /// A secret from setup not yet confirmed by a code.
    #[serde(default)]
    pub totp_pending: Option<SecretBytes>,
    /// The last TOTP step accepted; a step is accepted at most once.
    #[serde(default)]
    pub totp_last_step: Option<i64>,
    /// Salt of the backup-code digests.
    #[serde(default)]
    pub backup_salt: Option<[u8; 16]>,
    /// scrypt digests of the backup codes, and whether each has been used.
    #[serde(default)]
    pub backup_codes: Vec<([u8; 32], bool)>,
    /// Client networks the account completed a login from, with when: the account lock does
    /// not refuse them.
    #[serde(default)]
    pub login_networks: Vec<(String, UnixTime)>,
}

/// One session and its refresh-token lineage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Record version.
    pub v: u32,
    /// `ses-` + random.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Opened at.
    pub created_at: UnixTime,
    /// Last refresh (or the login).
    pub last_used_at: UnixTime,
    /// Absolute end.
    pub expires_at: UnixTime,
    /// Last password proof.
    pub auth_time: UnixTime,
    /// `User-Agent` at login.
    pub user_agent: Option<String>,
    /// Peer address at login.
    pub ip: Option<String>,
    /// SHA-256 of the live refresh token.
    pub current_hash: [u8; 32],
    /// SHA-256 of recently rotated-out tokens, oldest first; presenting one is reuse.
    pub previous_hashes: Vec<[u8; 32]>,
    /// When `current_hash` was issued.
    pub rotated_at: UnixTime,
}

impl SessionRecord {
    /// The refresh-token lineage the domain rule judges.
    pub fn lineage(&self) -> Lineage {
        Lineage {
            current: self.current_hash,
            previous: self.previous_hashes.clone(),
            rotated_at: self.rotated_at,
        }
    }

    /// Store a lineage the domain rule changed.
    pub fn set_lineage(&mut self, l: Lineage) {
        self.current_hash = l.current;
        self.previous_hashes = l.previous;
        self.rotated_at = l.rotated_at;
    }
}

/// An API key, stored under the SHA-256 of the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Record version.
    pub v: u32,
    /// `key-` + random.
    pub id: String,
    /// SHA-256 of the key (also the table key), compared in constant time on use.
    pub hash: [u8; 32],
    /// Owner.
    pub user_id: String,
    /// Name.
    pub name: String,
    /// Display prefix.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
    /// Last use, written in batches.
    pub last_used_at: Option<UnixTime>,
    /// Creation order among the user's keys: orders keys made within one second.
    #[serde(default)]
    pub seq: u64,
}

/// A signing key.
#[derive(Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// Record version.
    pub v: u32,
    /// Ed25519 secret seed.
    pub seed: [u8; 32],
    /// Creation time; the newest key that is not retired signs.
    pub created_at: UnixTime,
    /// When a newer key replaced it; it still verifies for a while after.
    #[serde(default)]
    pub retired_at: Option<UnixTime>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A message in the outbox. Its bodies may carry one-time links, so `Debug` leaves them out.
#[derive(Clone, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// Record version.
    pub v: u32,
    /// `mail-` + random.
    pub id: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// `text/plain` body.
    pub text: String,
    /// `text/html` body.
    pub html: String,
    /// Failed deliveries so far.
    pub attempts: u32,
    /// Not sent before this time.
    pub next_attempt_at: UnixTime,
    /// Queued at.
    pub created_at: UnixTime,
}

impl std::fmt::Debug for OutboxRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRecord")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl From<OutboxRecord> for QueuedMail {
    fn from(r: OutboxRecord) -> Self {
        QueuedMail {
            id: r.id,
            mail: OutgoingMail {
                to: r.to,
                subject: r.subject,
                text: r.text,
                html: r.html,
            },
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
        }
    }
}

impl From<&QueuedMail> for OutboxRecord {
    fn from(q: &QueuedMail) -> Self {
        OutboxRecord {
            v: RECORD_VERSION,
            id: q.id.clone(),
            to: q.mail.to.clone(),
            subject: q.mail.subject.clone(),
            text: q.mail.text.clone(),
            html: q.mail.html.clone(),
            attempts: q.attempts,
            next_attempt_at: q.next_attempt_at,
            created_at: q.created_at,
        }
    }
}

/// Records carry their version so a decoder can refuse what it does not understand.
pub trait Versioned {
    /// The record's version tag.
    fn version(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn version(&self) -> u32 {
                self.v
            }
        }
    )*};
}
versioned!(
    UserRecord,
    SessionRecord,
    SigningKeyRecord,
    ApiKeyRecord,
    OutboxRecord,
    MailTokenRecord,
    AuditRecord,
    AuditAnchorRecord
);

/// A security event in the audit chain. Its stored bytes are what the next entry's `prev` hashes,
/// so an entry is never re-encoded once written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Record version.
    pub v: u32,
    /// Its number, also its key: a moved entry no longer matches its place.
    pub seq: u64,
    /// When.
    pub at: UnixTime,
    /// `EventKind` name.
    pub kind: String,
    /// The account, if any.
    pub user_id: Option<String>,
    /// `Actor` name.
    pub actor: String,
    /// Client address.
    pub ip: Option<String>,
    /// Client `User-Agent`.
    pub user_agent: Option<String>,
    /// Session acted in or on.
    pub session_id: Option<String>,
    /// API key acted on.
    pub key_id: Option<String>,
    /// Type-specific facts.
    pub detail: Vec<(String, String)>,
    /// SHA-256 of the previous entry's stored bytes.
    pub prev: [u8; 32],
}

impl AuditRecord {
    /// The record of `event` as entry `seq`, linked to the entry whose hash is `prev`.
    pub fn new(event: &crate::domain::audit::Event, seq: u64, prev: [u8; 32]) -> AuditRecord {
        AuditRecord {
            v: RECORD_VERSION,
            seq,
            at: event.at,
            kind: event.kind.as_str().to_string(),
            user_id: event.user_id.clone(),
            actor: event.actor.as_str().to_string(),
            ip: event.ip.clone(),
            user_agent: event.user_agent.clone(),
            session_id: event.session_id.clone(),
            key_id: event.key_id.clone(),
            detail: event.detail.clone(),
            prev,
        }
    }
}

/// What the oldest kept audit entry links to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditAnchorRecord {
    /// Record version.
    pub v: u32,
    /// The last pruned entry's number.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
    /// How many were pruned in all.
    pub pruned: u64,
}

/// A one-time token sent by mail, stored under the SHA-256 of the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailTokenRecord {
    /// Record version.
    pub v: u32,
    /// What it proves: "verify", "reset" or "change".
    pub kind: String,
    /// The account.
    pub user_id: String,
    /// The address the mail went to (the new one, for an email change).
    pub email: String,
    /// It is refused from this time on.
    pub expires_at: UnixTime,
}

/// Encode a record.
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(256);
    ciborium::into_writer(record, &mut out)
        .map_err(|e| StoreError::Corrupt(format!("encode: {e}")))?;
    Ok(out)
}

/// Decode a record from `table`, refusing garbage and versions this build does not know.
pub fn decode<T: DeserializeOwned + Versioned>(table: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let record: T = ciborium::from_reader(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{table}: undecodable record: {e}")))?;
    if record.version() != RECORD_VERSION {
        return Err(StoreError::Corrupt(format!(
            "{table}: record version {} is not supported",
            record.version()
        )));
    }
    Ok(record)
}

impl From<UserRecord> for Account {
    fn from(r: UserRecord) -> Self {
        Account {
            id: r.id,
            email: r.email,
            name: r.name,
            company: r.company,
            plan: r.plan,
            password_hash: r.password_hash,
            created_at: r.created_at,
            email_verified_at: r.email_verified_at,
            disabled: r.disabled,
            two_factor: TwoFactor {
                enabled: r.two_factor_enabled,
                secret: r.totp_secret,
                pending: r.totp_pending,
                last_step: r.totp_last_step,
                backup_salt: r.backup_salt,
                backup_codes: r.backup_codes,
            },
            login_networks: r.login_networks,
        }
    }
}

impl From<&Account> for UserRecord {
    fn from(a: &Account) -> Self {
        let t = &a.two_factor;
        UserRecord {
            v: RECORD_VERSION,
            id: a.id.clone(),
            email: a.email.clone(),
            name: a.name.clone(),
            company: a.company.clone(),
            plan: a.plan.clone(),
            password_hash: a.password_hash.clone(),
            created_at: a.created_at,
            email_verified_at: a.email_verified_at,
            two_factor_enabled: t.enabled,
            disabled: a.disabled,
            totp_secret: t.secret.clone(),
            totp_pending: t.pending.clone(),
            totp_last_step: t.last_step,
            backup_salt: t.backup_salt,
            backup_codes: t.backup_codes.clone(),
            login_networks: a.login_networks.clone(),
        }
    }
}

/// An account from its stored bytes: the one place a user record is decoded.
pub(super) fn decode_user(bytes: &[u8]) -> Result<Account, StoreError> {
    decode::<UserRecord>("users", bytes).map(Account::from)
}

/// An account's stored bytes.
pub(super) fn encode_user(account: &Account) -> Result<Vec<u8>, StoreError> {
    encode(&UserRecord::from(account))
}

impl ApiKeyRecord {
    /// The record of a new key, never used yet, `seq`-th of its user.
    pub fn new(key: ApiKey, seq: u64) -> ApiKeyRecord {
        ApiKeyRecord {
            v: RECORD_VERSION,
            id: key.id,
            hash: key.hash,
            user_id: key.user_id,
            name: key.name,
            prefix: key.prefix,
            scopes: key.scopes,
            created_at: key.created_at,
            expires_at: key.expires_at,
            last_used_at: None,
            seq,
        }
    }
}

impl From<&ApiKeyRecord> for ApiKey {
    fn from(r: &ApiKeyRecord) -> Self {
        ApiKey {
            id: r.id.clone(),
            hash: r.hash,
            user_id: r.user_id.clone(),
            name: r.name.clone(),
            prefix: r.prefix.clone(),
            scopes: r.scopes.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
        }
    }
}

impl From<&SessionRecord> for Session {
    fn from(r: &SessionRecord) -> Self {
        Session {
            id: r.id.clone(),
            user_id: r.user_id.clone(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            auth_time: r.auth_time,
            user_agent: r.user_agent.clone(),
            ip: r.ip.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_unknown_versions_are_errors_not_panics() {
        assert!(decode::<UserRecord>("users", b"").is_err());
        assert!(decode::<UserRecord>("users", &[0xff, 0x00, 0x13]).is_err());
        let key = SigningKeyRecord {
            v: 2,
            seed: [7; 32],
            created_at: 1,
            retired_at: None,
        };
        let bytes = encode(&key).expect("encode");
        let err = decode::<SigningKeyRecord>("signing_keys", &bytes).expect_err("v2");
        assert!(err.to_string().contains("version 2"));
    }

    #[test]
    fn records_round_trip() {
        let key = SigningKeyRecord {
            v: RECORD_VERSION,
            seed: [7; 32],
            created_at: 1,
            retired_at: None,
        };
        let back: SigningKeyRecord =
            decode("signing_keys", &encode(&key).expect("encode")).expect("decode");
        assert_eq!(back.seed, [7; 32]);
        assert!(!format!("{back:?}").contains('7'));
    }
}

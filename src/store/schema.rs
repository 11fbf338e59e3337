//! Every redb table in one place, and the schema version the code understands.

use redb::{Key, MultimapTableDefinition, TableDefinition, Value};

use super::StoreError;

/// The schema this build reads and writes. Opening a file with a newer one is refused.
pub const SCHEMA_VERSION: u64 = 4;

/// `schema_version` and other single values.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// user id -> CBOR `UserRecord` (see `records`).
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// lowercased email -> user id; uniqueness of emails lives here.
pub const USERS_BY_EMAIL: TableDefinition<&str, &str> = TableDefinition::new("users_by_email");
/// session id -> CBOR `SessionRecord`.
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// user id -> (created_at, expires_at, session id) of each of its sessions, oldest first, so
/// that opening a session finds the expired and the oldest ones without reading any record.
pub const USER_SESSIONS: MultimapTableDefinition<&str, (i64, i64, &str)> =
    MultimapTableDefinition::new("user_sessions");
/// Schema 1's index of sessions by user (session ids only); replaced by `USER_SESSIONS`.
pub const SESSIONS_BY_USER_V1: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("sessions_by_user");
/// SHA-256 of a refresh token (current or recently rotated out) -> session id.
pub const REFRESH_TOKENS: TableDefinition<&[u8], &str> = TableDefinition::new("refresh_tokens");
/// kid -> CBOR `SigningKeyRecord`.
pub const SIGNING_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("signing_keys");
/// SHA-256 of an API key -> CBOR `ApiKeyRecord`; the key itself is never stored.
pub const API_KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("api_keys");
/// key id -> SHA-256 of the key.
pub const API_KEYS_BY_ID: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys_by_id");
/// user id -> key ids.
pub const API_KEYS_BY_USER: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("api_keys_by_user");

/// mail id -> CBOR `OutboxRecord`: mail queued in the same transaction as what it announces,
/// until the delivery worker has handed it over.
pub const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");

/// SHA-256 of a mailed one-time token -> CBOR `MailTokenRecord`.
pub const MAIL_TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("mail_tokens");
/// "user id/kind" -> the SHA-256 of that user's latest token of that kind: a newer one voids it.
pub const LATEST_MAIL_TOKEN: TableDefinition<&str, &[u8]> =
    TableDefinition::new("latest_mail_token");

/// sequence number -> CBOR `AuditRecord`: the security log, a hash chain in this order.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// (user id, sequence number) of each event of a user, for their activity page.
pub const AUDIT_BY_USER: TableDefinition<(&str, u64), ()> = TableDefinition::new("audit_by_user");
/// "anchor" -> CBOR `AuditAnchorRecord`: what the oldest kept entry links to once older ones
/// are pruned.
pub const AUDIT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_meta");

/// Something done to every table alike: opening it at start, copying it into a backup.
pub(super) trait EachTable {
    /// A plain table.
    fn table<K: Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<K, V>,
    ) -> Result<(), StoreError>;
    /// A multimap table.
    fn multimap<K: Key + 'static, V: Key + 'static>(
        &mut self,
        def: MultimapTableDefinition<K, V>,
    ) -> Result<(), StoreError>;
}

/// Visit every table of the schema: the one list of them, so a new table cannot be opened at
/// start and then left out of backups.
pub(super) fn each_table(v: &mut impl EachTable) -> Result<(), StoreError> {
    v.table(META)?;
    v.table(USERS)?;
    v.table(USERS_BY_EMAIL)?;
    v.table(SESSIONS)?;
    v.multimap(USER_SESSIONS)?;
    v.table(REFRESH_TOKENS)?;
    v.table(SIGNING_KEYS)?;
    v.table(API_KEYS)?;
    v.table(API_KEYS_BY_ID)?;
    v.multimap(API_KEYS_BY_USER)?;
    v.table(OUTBOX)?;
    v.table(MAIL_TOKENS)?;
    v.table(LATEST_MAIL_TOKEN)?;
    v.table(AUDIT)?;
    v.table(AUDIT_BY_USER)?;
    v.table(AUDIT_META)
}

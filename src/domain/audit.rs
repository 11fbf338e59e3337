//! Security events: what happened to an account or the server, by whom, from where. Recorded by
//! the store in the transaction of the change they describe, chained by hash.

use crate::clock::UnixTime;
use crate::domain::models::ClientInfo;

/// What happened. The names are the wire and storage form; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An account was created.
    Register,
    /// A password (and code) login opened a session.
    LoginSucceeded,
    /// A login of a known account was refused; `detail.reason` says why.
    LoginFailed,
    /// Wrong guesses locked the account for a while.
    AccountLocked,
    /// A spent refresh token came back: its session was ended.
    RefreshTokenReused,
    /// The session's owner ended it.
    Logout,
    /// The owner ended one of their sessions.
    SessionRevoked,
    /// Two-factor enrolment started.
    TotpSetup,
    /// Two-factor authentication went on.
    TotpEnabled,
    /// Two-factor authentication went off.
    TotpDisabled,
    /// A backup code was spent.
    BackupCodeUsed,
    /// An API key was created.
    ApiKeyCreated,
    /// An API key was revoked.
    ApiKeyRevoked,
    /// The owner changed the password.
    PasswordChanged,
    /// The password was reset with a mailed (or operator's) link.
    PasswordReset,
    /// The email address was proven.
    EmailVerified,
    /// The account moved to another address.
    EmailChanged,
    /// An operator disabled the account.
    AccountDisabled,
    /// An operator enabled the account.
    AccountEnabled,
    /// The account was deleted.
    AccountDeleted,
    /// An operator changed the plan.
    PlanChanged,
    /// A new signing key signs from now on.
    SigningKeyRotated,
    /// A backup of the database was taken.
    BackupTaken,
    /// The database was restored from a backup.
    Restored,
}

/// Every kind, for parsing and tests.
pub const ALL_KINDS: &[EventKind] = &[
    EventKind::Register,
    EventKind::LoginSucceeded,
    EventKind::LoginFailed,
    EventKind::AccountLocked,
    EventKind::RefreshTokenReused,
    EventKind::Logout,
    EventKind::SessionRevoked,
    EventKind::TotpSetup,
    EventKind::TotpEnabled,
    EventKind::TotpDisabled,
    EventKind::BackupCodeUsed,
    EventKind::ApiKeyCreated,
    EventKind::ApiKeyRevoked,
    EventKind::PasswordChanged,
    EventKind::PasswordReset,
    EventKind::EmailVerified,
    EventKind::EmailChanged,
    EventKind::AccountDisabled,
    EventKind::AccountEnabled,
    EventKind::AccountDeleted,
    EventKind::PlanChanged,
    EventKind::SigningKeyRotated,
    EventKind::BackupTaken,
    EventKind::Restored,
];

impl EventKind {
    /// The name users, operators and the log see.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Register => "register",
            EventKind::LoginSucceeded => "login_succeeded",
            EventKind::LoginFailed => "login_failed",
            EventKind::AccountLocked => "account_locked",
            EventKind::RefreshTokenReused => "refresh_token_reused",
            EventKind::Logout => "logout",
            EventKind::SessionRevoked => "session_revoked",
            EventKind::TotpSetup => "totp_setup",
            EventKind::TotpEnabled => "totp_enabled",
            EventKind::TotpDisabled => "totp_disabled",
            EventKind::BackupCodeUsed => "backup_code_used",
            EventKind::ApiKeyCreated => "api_key_created",
            EventKind::ApiKeyRevoked => "api_key_revoked",
            EventKind::PasswordChanged => "password_changed",
            EventKind::PasswordReset => "password_reset",
            EventKind::EmailVerified => "email_verified",
            EventKind::EmailChanged => "email_changed",
            EventKind::AccountDisabled => "account_disabled",
            EventKind::AccountEnabled => "account_enabled",
            EventKind::AccountDeleted => "account_deleted",
            EventKind::PlanChanged => "plan_changed",
            EventKind::SigningKeyRotated => "signing_key_rotated",
            EventKind::BackupTaken => "backup_taken",
            EventKind::Restored => "restored",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<EventKind> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == name)
    }
}

/// Who made the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The account's owner (or whoever held its credentials), over HTTP.
    User,
    /// An operator, through the admin CLI.
    Admin,
    /// The server on its own.
    System,
}

impl Actor {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::User => "user",
            Actor::Admin => "admin",
            Actor::System => "system",
        }
    }

    /// The actor named `name`.
    pub fn parse(name: &str) -> Option<Actor> {
        [Actor::User, Actor::Admin, Actor::System]
            .into_iter()
            .find(|a| a.as_str() == name)
    }
}

/// Why a login was refused, as `detail.reason` of `login_failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// The password was wrong.
    WrongPassword,
    /// The second-factor code was wrong or spent.
    WrongCode,
    /// The password was right, the code missing.
    MissingCode,
    /// The account is locked by earlier wrong guesses.
    Locked,
    /// An operator disabled the account.
    Disabled,
    /// The email is not verified and must be.
    EmailNotVerified,
}

impl LoginFailure {
    /// Whether this refusal followed a wrong password or code (what the account lock counts),
    /// rather than a right password that may not log in.
    pub fn counts_as_wrong_guess(self) -> bool {
        matches!(self, LoginFailure::WrongPassword | LoginFailure::WrongCode)
    }

    /// The recorded reason.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::WrongPassword => "wrong_password",
            LoginFailure::WrongCode => "wrong_code",
            LoginFailure::MissingCode => "missing_code",
            LoginFailure::Locked => "locked",
            LoginFailure::Disabled => "disabled",
            LoginFailure::EmailNotVerified => "email_not_verified",
        }
    }
}

/// One security event, before the store gives it its place in the chain. Never holds a secret:
/// ids, addresses, names, reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// When (the server's clock).
    pub at: UnixTime,
    /// The account, when there is one.
    pub user_id: Option<String>,
    /// Who did it.
    pub actor: Actor,
    /// The client's address, for HTTP actions.
    pub ip: Option<String>,
    /// The client's `User-Agent`, for HTTP actions.
    pub user_agent: Option<String>,
    /// The session acted in or on.
    pub session_id: Option<String>,
    /// The API key acted on.
    pub key_id: Option<String>,
    /// A few type-specific facts, in the order given.
    pub detail: Vec<(String, String)>,
}

impl Event {
    /// An event of an HTTP request by the account's user.
    pub fn by_user(kind: EventKind, at: UnixTime, client: &ClientInfo) -> Event {
        Event {
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
            ..Event::new(kind, at, Actor::User)
        }
    }

    /// An operator's event.
    pub fn by_admin(kind: EventKind, at: UnixTime) -> Event {
        Event::new(kind, at, Actor::Admin)
    }

    /// The server's own event.
    pub fn by_system(kind: EventKind, at: UnixTime) -> Event {
        Event::new(kind, at, Actor::System)
    }

    fn new(kind: EventKind, at: UnixTime, actor: Actor) -> Event {
        Event {
            kind,
            at,
            user_id: None,
            actor,
            ip: None,
            user_agent: None,
            session_id: None,
            key_id: None,
            detail: Vec::new(),
        }
    }

    /// For the account `id`.
    pub fn user(mut self, id: &str) -> Event {
        self.user_id = Some(id.to_string());
        self
    }

    /// In or on the session `id`.
    pub fn session(mut self, id: &str) -> Event {
        self.session_id = Some(id.to_string());
        self
    }

    /// On the API key `id`.
    pub fn key(mut self, id: &str) -> Event {
        self.key_id = Some(id.to_string());
        self
    }

    /// With one more fact.
    pub fn detail(mut self, name: &str, value: impl Into<String>) -> Event {
        self.detail.push((name.to_string(), value.into()));
        self
    }

    /// The same circumstances, another kind (a backup code spent by a login, say).
    pub fn also(&self, kind: EventKind) -> Event {
        Event {
            kind,
            detail: Vec::new(),
            ..self.clone()
        }
    }
}

/// An event in its place: its number in the chain and the hash of the entry before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1, 2, 3, … in the order of the chain; never reused.
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// SHA-256 of the previous entry's stored bytes (of the pruning anchor, for the oldest kept
    /// one; zeros for the very first).
    pub prev: [u8; 32],
    /// SHA-256 of this entry's stored bytes: the next entry's `prev`.
    pub hash: [u8; 32],
}

impl Entry {
    /// The public id of an entry: also the activity cursor.
    pub fn id(&self) -> String {
        format!("ev-{}", self.seq)
    }

    /// The sequence number in an entry id, if it is one.
    pub fn parse_id(id: &str) -> Option<u64> {
        let digits = id.strip_prefix("ev-")?;
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

/// Where a walk of the chain found it broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The first entry whose link does not hold.
    pub seq: u64,
    /// What is wrong, for people.
    pub why: String,
}

/// What the oldest kept entry links to once older ones are pruned: the last pruned entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The last pruned entry's number.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
    /// Entries pruned so far.
    pub pruned: u64,
}

/// Walks entries oldest first and checks every link; `anchor` is where the kept part starts.
#[derive(Debug)]
pub struct ChainCheck {
    expected_seq: u64,
    expected_prev: [u8; 32],
    /// Entries checked.
    pub count: u64,
}

impl ChainCheck {
    /// A walk from the start of what is kept.
    pub fn new(anchor: Option<Anchor>) -> ChainCheck {
        let (expected_seq, expected_prev) = match anchor {
            Some(a) => (a.seq + 1, a.hash),
            None => (1, [0; 32]),
        };
        ChainCheck {
            expected_seq,
            expected_prev,
            count: 0,
        }
    }

    /// The next entry as stored at position `key`, whose record says `seq` and `prev`, and
    /// whose stored bytes hash to `hash`.
    pub fn next(
        &mut self,
        key: u64,
        seq: u64,
        prev: [u8; 32],
        hash: [u8; 32],
    ) -> Result<(), BrokenLink> {
        let broken = |why: &str| BrokenLink {
            seq: key,
            why: why.to_string(),
        };
        if seq != key {
            return Err(broken(
                "its number does not match its place: entries were moved",
            ));
        }
        if key != self.expected_seq {
            return Err(broken(&format!(
                "entries {} to {} are missing",
                self.expected_seq,
                key.saturating_sub(1)
            )));
        }
        if prev != self.expected_prev {
            return Err(broken(if self.count == 0 && key > 1 {
                "it does not link to the recorded pruning anchor"
            } else {
                "it does not link to the entry before it: that entry was changed or replaced"
            }));
        }
        self.expected_seq = key + 1;
        self.expected_prev = hash;
        self.count += 1;
        Ok(())
    }

    /// The hash the next entry must link to: the head of the chain so far.
    pub fn head(&self) -> [u8; 32] {
        self.expected_prev
    }

    /// The number of the last entry checked (or of the anchor).
    pub fn head_seq(&self) -> u64 {
        self.expected_seq - 1
    }
}

/// The text a checkpoint signs: the head of the log at one moment.
pub fn checkpoint_message(seq: u64, hash_hex: &str, at: UnixTime) -> String {
    format!("cloudheed-auth audit checkpoint v1\nseq {seq}\nhash {hash_hex}\nat {at}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn kind_names_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for k in ALL_KINDS {
            assert!(seen.insert(k.as_str()), "{}", k.as_str());
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(EventKind::parse("nope"), None);
        assert_eq!(Actor::parse("admin"), Some(Actor::Admin));
    }

    #[test]
    fn entry_ids_round_trip_and_refuse_junk() {
        let e = Entry {
            seq: 42,
            event: Event::by_system(EventKind::BackupTaken, 0),
            prev: h(0),
            hash: h(1),
        };
        assert_eq!(Entry::parse_id(&e.id()), Some(42));
        for bad in [
            "",
            "ev-",
            "42",
            "ev-x",
            "ev--1",
            "ev-1 ",
            "ev-99999999999999999999999",
        ] {
            assert_eq!(Entry::parse_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_chain_check_names_the_first_broken_link() {
        let mut c = ChainCheck::new(None);
        assert!(c.next(1, 1, h(0), h(1)).is_ok());
        assert!(c.next(2, 2, h(1), h(2)).is_ok());
        assert_eq!(c.count, 2);
        assert_eq!(c.next(3, 3, h(9), h(3)).expect_err("edited").seq, 3);
        let mut c = ChainCheck::new(None);
        c.next(1, 1, h(0), h(1)).expect("ok");
        let gap = c.next(3, 3, h(2), h(3)).expect_err("gap");
        assert_eq!(gap.seq, 3);
        assert!(gap.why.contains("2 to 2 are missing"), "{}", gap.why);
        let mut c = ChainCheck::new(None);
        assert!(c.next(1, 2, h(0), h(1)).is_err(), "moved");
        let mut c = ChainCheck::new(Some(Anchor {
            seq: 10,
            hash: h(7),
            pruned: 10,
        }));
        assert!(c.next(11, 11, h(7), h(8)).is_ok(), "links to the anchor");
        assert_eq!(c.head(), h(8));
        assert_eq!(c.head_seq(), 11);
    }
}

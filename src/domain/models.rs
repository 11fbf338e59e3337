//! The models services hand to handlers: a user, a session, and who is calling.

use std::net::IpAddr;

use crate::clock::UnixTime;

/// An account, as handlers may show it. The password hash never leaves the store layer's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `user-` + random.
    pub id: String,
    /// As registered (trimmed).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Optional company.
    pub company: Option<String>,
    /// Plan; only operators change it.
    pub plan: String,
    /// Whether TOTP is required at login.
    pub two_factor_enabled: bool,
    /// When the email was verified, if ever.
    pub email_verified_at: Option<UnixTime>,
    /// When the account was created.
    pub created_at: UnixTime,
}

/// One login on one device: the unit a refresh-token family and its access tokens belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `ses-` + random; the access token's `sid`.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// When the session was opened.
    pub created_at: UnixTime,
    /// When its refresh token was last used (or the login, if never).
    pub last_used_at: UnixTime,
    /// Absolute end of the session; no refresh extends it.
    pub expires_at: UnixTime,
    /// When the password was last proven in this session (login or register).
    pub auth_time: UnixTime,
    /// The client's `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// The client's address.
    pub ip: Option<String>,
}

/// What the HTTP edge tells services about the caller, for session records and logs.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Peer address.
    pub ip: Option<IpAddr>,
    /// `User-Agent`, at most 256 characters.
    pub user_agent: Option<String>,
}

/// A user's API key, as it may be shown: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `key-` + random.
    pub id: String,
    /// SHA-256 of the key: how the store finds it. Not a secret (the key has 190 random bits).
    pub hash: [u8; 32],
    /// Owner.
    pub user_id: String,
    /// Name given at creation.
    pub name: String,
    /// The key's first characters, enough to tell keys apart, far too few to use.
    pub prefix: String,
    /// What the key may do.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: UnixTime,
    /// The key is refused from this time on.
    pub expires_at: UnixTime,
    /// Last use, as of the last flush of usage (may lag a few seconds).
    pub last_used_at: Option<UnixTime>,
}

impl ApiKey {
    /// Room for one more key of a user who holds `keys`: the indexes of the expired ones (to
    /// delete: they no longer count) and whether a new one stays within `max` live keys.
    pub fn room_for_one_more(keys: &[ApiKey], now: UnixTime, max: usize) -> (Vec<usize>, bool) {
        let expired: Vec<usize> = (0..keys.len())
            .filter(|i| now >= keys[*i].expires_at)
            .collect();
        let live = keys.len() - expired.len();
        (expired, live < max)
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access token of a live session: holds every configured scope.
    Session {
        /// The session.
        session_id: String,
        /// When the password was last proven in it.
        auth_time: UnixTime,
    },
    /// An API key: holds its own scopes only.
    ApiKey {
        /// The key.
        key_id: String,
        /// Its scopes.
        scopes: Vec<String>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The account.
    pub user: User,
    /// The credential presented.
    pub credential: Credential,
}

impl Principal {
    /// The session, if the caller presented an access token.
    pub fn session_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { session_id, .. } => Some(session_id),
            Credential::ApiKey { .. } => None,
        }
    }

    /// The caller as a session caller, or `None` for an API key.
    pub fn into_session(self) -> Option<SessionCaller> {
        match self.credential {
            Credential::Session {
                session_id,
                auth_time,
            } => Some(SessionCaller {
                user: self.user,
                session_id,
                auth_time,
            }),
            Credential::ApiKey { .. } => None,
        }
    }
}

/// A caller that presented an access token of a live session: what session-only use cases
/// take, so none of them can be reached with an API key.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    /// The account.
    pub user: User,
    /// The session the token belongs to.
    pub session_id: String,
    /// When the password was last proven in it.
    pub auth_time: UnixTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(expires_at: UnixTime) -> ApiKey {
        ApiKey {
            id: "key-1".into(),
            hash: [0; 32],
            user_id: "user-1".into(),
            name: "k".into(),
            prefix: "ch_live_abc".into(),
            scopes: vec![],
            created_at: 0,
            expires_at,
            last_used_at: None,
        }
    }

    #[test]
    fn expired_keys_make_room_and_live_ones_count_against_the_cap() {
        let keys = [key(10), key(100), key(5)];
        assert_eq!(ApiKey::room_for_one_more(&keys, 10, 2), (vec![0, 2], true));
        assert_eq!(ApiKey::room_for_one_more(&keys, 4, 3), (vec![], false));
        assert_eq!(ApiKey::room_for_one_more(&[], 0, 1), (vec![], true));
    }
}

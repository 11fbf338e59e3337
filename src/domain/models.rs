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

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The account.
    pub user: User,
    /// The session the access token belongs to.
    pub session_id: String,
}

//! Wire types: request bodies as clients send them and response bodies as the spec shows them.
//! Field names follow `spec/cloudheed-auth-api-reference.txt`; no logic lives here.

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::crypto::keys::PublicJwk;
use crate::domain::models::{ApiKey, Session, User};
use crate::domain::password::Password;
use crate::secret::Secret;
use crate::service::tokens::TokenPair;

/// `POST /v1/auth/register`. Required fields are `Option` so a missing one is a 422 naming it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email.
    pub email: Option<String>,
    /// Password.
    pub password: Option<Password>,
    /// Name.
    pub name: Option<String>,
    /// Company.
    pub company: Option<String>,
}

/// `POST /v1/auth/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email.
    pub email: Option<String>,
    /// Password.
    pub password: Option<Password>,
    /// TOTP or backup code, for accounts with two-factor authentication.
    pub totp_code: Option<Secret>,
}

/// `POST /v1/auth/refresh`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh_token: Option<Secret>,
}

/// `user` in the register response.
#[derive(Debug, Serialize)]
pub struct RegisteredUser<'a> {
    id: &'a str,
    email: &'a str,
    name: &'a str,
}

/// `user` in the login response.
#[derive(Debug, Serialize)]
pub struct LoggedInUser<'a> {
    id: &'a str,
    email: &'a str,
    name: &'a str,
    two_factor_enabled: bool,
}

/// `{token, refresh_token[, user]}`.
#[derive(Debug, Serialize)]
pub struct TokenResponse<'a, U: Serialize> {
    token: &'a str,
    refresh_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<U>,
}

/// Register's 201 body.
pub fn registered<'a>(pair: &'a TokenPair, u: &'a User) -> TokenResponse<'a, RegisteredUser<'a>> {
    TokenResponse {
        token: pair.access_token.expose(),
        refresh_token: pair.refresh_token.expose(),
        user: Some(RegisteredUser {
            id: &u.id,
            email: &u.email,
            name: &u.name,
        }),
    }
}

/// Login's 200 body.
pub fn logged_in<'a>(pair: &'a TokenPair, u: &'a User) -> TokenResponse<'a, LoggedInUser<'a>> {
    TokenResponse {
        token: pair.access_token.expose(),
        refresh_token: pair.refresh_token.expose(),
        user: Some(LoggedInUser {
            id: &u.id,
            email: &u.email,
            name: &u.name,
            two_factor_enabled: u.two_factor_enabled,
        }),
    }
}

/// Refresh's 200 body.
pub fn refreshed(pair: &TokenPair) -> TokenResponse<'_, ()> {
    TokenResponse {
        token: pair.access_token.expose(),
        refresh_token: pair.refresh_token.expose(),
        user: None,
    }
}

/// `GET /v1/auth/me`.
#[derive(Debug, Serialize)]
pub struct MeResponse<'a> {
    id: &'a str,
    email: &'a str,
    name: &'a str,
    company: Option<&'a str>,
    plan: &'a str,
    two_factor_enabled: bool,
    email_verified_at: Option<String>,
    created_at: String,
}

impl<'a> From<&'a User> for MeResponse<'a> {
    fn from(u: &'a User) -> Self {
        MeResponse {
            id: &u.id,
            email: &u.email,
            name: &u.name,
            company: u.company.as_deref(),
            plan: &u.plan,
            two_factor_enabled: u.two_factor_enabled,
            email_verified_at: u.email_verified_at.map(rfc3339),
            created_at: rfc3339(u.created_at),
        }
    }
}

/// One entry of `GET /v1/auth/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionItem<'a> {
    id: &'a str,
    created_at: String,
    last_used_at: String,
    user_agent: Option<&'a str>,
    ip: Option<&'a str>,
    current: bool,
}

/// `GET /v1/auth/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionsResponse<'a> {
    sessions: Vec<SessionItem<'a>>,
}

impl<'a> SessionsResponse<'a> {
    /// The list, marking the caller's own session.
    pub fn new(sessions: &'a [Session], current: &str) -> Self {
        SessionsResponse {
            sessions: sessions
                .iter()
                .map(|s| SessionItem {
                    id: &s.id,
                    created_at: rfc3339(s.created_at),
                    last_used_at: rfc3339(s.last_used_at),
                    user_agent: s.user_agent.as_deref(),
                    ip: s.ip.as_deref(),
                    current: s.id == current,
                })
                .collect(),
        }
    }
}

/// `POST /v1/auth/api-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// Name.
    pub name: Option<String>,
    /// Scopes.
    pub scopes: Option<Vec<String>>,
    /// Lifetime, like "365d".
    pub expires_in: Option<String>,
}

/// `POST /v1/auth/api-keys` → 201: the only time the key is shown.
#[derive(Debug, Serialize)]
pub struct CreatedApiKey<'a> {
    api_key: &'a str,
    id: &'a str,
    name: &'a str,
    prefix: &'a str,
    scopes: &'a [String],
    expires_at: String,
}

impl<'a> CreatedApiKey<'a> {
    /// The body, from the secret and the stored view.
    pub fn new(secret: &'a Secret, k: &'a ApiKey) -> Self {
        CreatedApiKey {
            api_key: secret.expose(),
            id: &k.id,
            name: &k.name,
            prefix: &k.prefix,
            scopes: &k.scopes,
            expires_at: rfc3339(k.expires_at),
        }
    }
}

/// One entry of `GET /v1/auth/api-keys`: never the key.
#[derive(Debug, Serialize)]
pub struct ApiKeyItem<'a> {
    id: &'a str,
    name: &'a str,
    prefix: &'a str,
    scopes: &'a [String],
    last_used_at: Option<String>,
    expires_at: String,
    created_at: String,
}

/// `GET /v1/auth/api-keys`.
#[derive(Debug, Serialize)]
pub struct ApiKeysResponse<'a> {
    api_keys: Vec<ApiKeyItem<'a>>,
}

impl<'a> ApiKeysResponse<'a> {
    /// The list.
    pub fn new(keys: &'a [ApiKey]) -> Self {
        ApiKeysResponse {
            api_keys: keys
                .iter()
                .map(|k| ApiKeyItem {
                    id: &k.id,
                    name: &k.name,
                    prefix: &k.prefix,
                    scopes: &k.scopes,
                    last_used_at: k.last_used_at.map(rfc3339),
                    expires_at: rfc3339(k.expires_at),
                    created_at: rfc3339(k.created_at),
                })
                .collect(),
        }
    }
}

/// `GET /v1/auth/verify`.
#[derive(Debug, Serialize)]
pub struct VerifyResponse<'a> {
    /// The user.
    pub user_id: &'a str,
    /// "session" or "api_key".
    pub credential: &'static str,
    /// Scopes held.
    pub scopes: &'a [String],
    /// The key, for API-key callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<&'a str>,
}

/// `POST /v1/auth/2fa/setup`: the body is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpSetupRequest {
    /// The account password, when the session's login is older than 15 minutes.
    pub password: Option<Password>,
}

/// `POST /v1/auth/2fa/setup` → 200. `Debug` hides it: every field carries the secret.
#[derive(Serialize)]
pub struct TotpSetupResponse<'a> {
    /// Base32 secret.
    pub secret: &'a str,
    /// `otpauth://` URL.
    pub qr_code_url: &'a str,
    /// Inline SVG QR code of the URL.
    pub qr_code_svg: &'a str,
}

/// `POST /v1/auth/2fa/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpVerifyRequest {
    /// A code from the authenticator.
    pub code: Option<Secret>,
}

/// `POST /v1/auth/2fa/verify` → 200. `Debug` hides the backup codes.
#[derive(Serialize)]
pub struct TotpEnabledResponse<'a> {
    /// "2fa_enabled".
    pub message_code: &'static str,
    /// Ten single-use backup codes, shown this once.
    pub backup_codes: Vec<&'a str>,
}

/// `POST /v1/auth/2fa/disable`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpDisableRequest {
    /// The account password.
    pub password: Option<Password>,
    /// A TOTP or backup code.
    pub code: Option<Secret>,
}

/// `POST /v1/auth/password/change`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    /// The password now.
    pub current_password: Option<Password>,
    /// The password from now on.
    pub new_password: Option<Password>,
}

/// `POST /v1/auth/email/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token from the mailed link.
    pub token: Option<Secret>,
}

/// `POST /v1/auth/email/change`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChangeRequest {
    /// The address to move to.
    pub new_email: Option<String>,
    /// The account password.
    pub password: Option<Password>,
}

/// `POST /v1/auth/password/forgot`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    /// The account's address.
    pub email: Option<String>,
}

/// `POST /v1/auth/password/reset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The token from the mailed link.
    pub token: Option<Secret>,
    /// The new password.
    pub password: Option<Password>,
    /// A TOTP or backup code, when two-factor authentication is on.
    pub totp_code: Option<Secret>,
}

/// `DELETE /v1/auth/me`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account password.
    pub password: Option<Password>,
    /// A TOTP or backup code, when two-factor authentication is on.
    pub totp_code: Option<Secret>,
}

impl std::fmt::Debug for TotpSetupResponse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSetupResponse(<hidden>)")
    }
}

impl std::fmt::Debug for TotpEnabledResponse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnabledResponse(<hidden>)")
    }
}

/// `{message_code}` for successes that return nothing else.
#[derive(Debug, Serialize)]
pub struct MessageResponse {
    /// The outcome.
    pub message_code: &'static str,
}

/// `GET /.well-known/jwks.json`.
#[derive(Debug, Serialize)]
pub struct JwksResponse<'a> {
    /// Public keys, newest first.
    pub keys: &'a [PublicJwk],
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Serialize)]
pub struct StatusResponse {
    /// "ok" or "ready".
    pub status: &'static str,
}

/// `GET /v1/auth/activity`.
#[derive(Debug, Serialize)]
pub struct ActivityResponse {
    /// Newest first.
    pub events: Vec<ActivityEvent>,
    /// The cursor of the next (older) page, or null on the last.
    pub next: Option<String>,
}

/// One of the caller's security events.
#[derive(Debug, Serialize)]
pub struct ActivityEvent {
    /// `ev-N`; also a cursor.
    pub id: String,
    /// What happened (`login_succeeded`, `api_key_created`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When, RFC 3339.
    pub at: String,
    /// The client's address, for HTTP actions.
    pub ip: Option<String>,
    /// The client's `User-Agent`, for HTTP actions.
    pub user_agent: Option<String>,
    /// The session acted in or on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The API key acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl ActivityResponse {
    /// The page for `entries`.
    pub fn new(entries: &[crate::domain::audit::Entry], next: Option<String>) -> Self {
        ActivityResponse {
            events: entries
                .iter()
                .map(|e| ActivityEvent {
                    id: e.id(),
                    kind: e.event.kind.as_str(),
                    at: rfc3339(e.event.at),
                    ip: e.event.ip.clone(),
                    user_agent: e.event.user_agent.clone(),
                    session_id: e.event.session_id.clone(),
                    key_id: e.event.key_id.clone(),
                })
                .collect(),
            next,
        }
    }
}

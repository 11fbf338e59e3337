//! The crate-wide error: every failure a request can meet, with its status and `message_code`.
//!
//! `status()` and `code()` are exhaustive matches with no wildcard arm, so a new variant does not
//! compile until it has both. Rendering lives in `http::response`, the one place errors become
//! responses.

use std::time::Duration;

use crate::store::StoreError;

pub use crate::domain::types::FieldError;

/// Everything that can go wrong while serving a request.
#[derive(Debug)]
pub enum Error {
    // ---- client errors: safe to describe ----
    /// 400: malformed JSON, wrong types, invalid UTF-8, nesting too deep. The text is ours, never
    /// an echo of the input.
    InvalidRequest(String),
    /// 404: no such route, or no such object visible to the caller.
    NotFound,
    /// 405: the path exists but not with this method; carries the `Allow` value.
    MethodNotAllowed(&'static str),
    /// 408: the body did not arrive within `limits.body_read_timeout`.
    RequestTimeout,
    /// 413: body above `limits.max_body_bytes`.
    PayloadTooLarge,
    /// 415: a body that is not declared as JSON.
    UnsupportedMediaType,
    /// 422: the body parsed but its values break the rules.
    Validation(Vec<FieldError>),
    /// 401: bearer missing, malformed, expired, revoked.
    Unauthorized,
    /// 401: login with a wrong email or password; identical for both.
    InvalidCredentials,
    /// 401: unknown, expired, rotated-out or revoked refresh token.
    InvalidRefreshToken,
    /// 401: the password was right, the account has two-factor authentication, no code was sent.
    TotpRequired,
    /// 401: login with a wrong, replayed or used second-factor code.
    InvalidTotpCode,
    /// 422: a wrong code confirming 2FA verify or disable, inside an authenticated request.
    InvalidTotpConfirmation,
    /// 422: a wrong password confirming 2FA disable.
    InvalidPassword,
    /// 422: 2FA verify before any setup.
    TwoFactorNotSetUp,
    /// 403: enrolling an authenticator needs a recent password proof.
    ReauthenticationRequired,
    /// 403: an operator disabled the account (told only to a caller who proved the password or
    /// holds one of its credentials).
    AccountDisabled,
    /// 403: a right password, but `accounts.require_verified_email` and the email is not
    /// verified yet.
    EmailNotVerified,
    /// 409: 2FA setup or verify while it is on.
    TwoFactorAlreadyEnabled,
    /// 409: 2FA disable while it is off.
    TwoFactorNotEnabled,
    /// 429: too many failures; try again after `retry_after`.
    RateLimited {
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    /// 403: an API key was used where only a session may act.
    SessionRequired,
    /// 403: the credential lacks the scope asked for.
    InsufficientScope,
    /// 409: an account with this email exists.
    EmailTaken,
    /// 409: the user holds the most API keys allowed.
    ApiKeyLimitReached,
    /// 503: the password-hashing pool is full and the wait ran out.
    Overloaded {
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    // ---- server errors: logged with the request id, never described to the client ----
    /// 500: the store failed.
    Store(StoreError),
    /// 400: a mailed token that is wrong, used or expired.
    InvalidToken,
    /// 409: the email is verified already.
    EmailAlreadyVerified,
    /// 503: this server sends no mail (`email.transport = "none"`).
    EmailNotConfigured,
    /// 500: anything else that should not happen.
    Internal(String),
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidRequest(_) | Error::InvalidToken => 400,
            Error::Unauthorized
            | Error::InvalidCredentials
            | Error::InvalidRefreshToken
            | Error::TotpRequired
            | Error::InvalidTotpCode => 401,
            Error::ReauthenticationRequired | Error::AccountDisabled | Error::EmailNotVerified => {
                403
            }
            Error::TwoFactorAlreadyEnabled | Error::TwoFactorNotEnabled => 409,
            Error::InvalidTotpConfirmation | Error::InvalidPassword | Error::TwoFactorNotSetUp => {
                422
            }
            Error::RateLimited { .. } => 429,
            Error::SessionRequired | Error::InsufficientScope => 403,
            Error::NotFound => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::RequestTimeout => 408,
            Error::EmailTaken | Error::ApiKeyLimitReached | Error::EmailAlreadyVerified => 409,
            Error::PayloadTooLarge => 413,
            Error::UnsupportedMediaType => 415,
            Error::Validation(_) => 422,
            Error::Store(_) | Error::Internal(_) => 500,
            Error::Overloaded { .. } | Error::EmailNotConfigured => 503,
        }
    }

    /// The stable `message_code` clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::RequestTimeout => "request_timeout",
            Error::PayloadTooLarge => "payload_too_large",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::Validation(_) => "validation_failed",
            Error::Unauthorized => "unauthorized",
            Error::InvalidCredentials => "invalid_credentials",
            Error::InvalidRefreshToken => "invalid_refresh_token",
            Error::TotpRequired => "totp_required",
            Error::InvalidTotpCode | Error::InvalidTotpConfirmation => "invalid_totp_code",
            Error::InvalidPassword => "invalid_password",
            Error::TwoFactorNotSetUp => "2fa_not_set_up",
            Error::ReauthenticationRequired => "reauthentication_required",
            Error::AccountDisabled => "account_disabled",
            Error::EmailNotVerified => "email_not_verified",
            Error::TwoFactorAlreadyEnabled => "2fa_already_enabled",
            Error::TwoFactorNotEnabled => "2fa_not_enabled",
            Error::RateLimited { .. } => "rate_limited",
            Error::SessionRequired => "session_required",
            Error::InsufficientScope => "insufficient_scope",
            Error::EmailTaken => "email_taken",
            Error::ApiKeyLimitReached => "api_key_limit_reached",
            Error::Overloaded { .. } => "overloaded",
            Error::InvalidToken => "invalid_token",
            Error::EmailAlreadyVerified => "email_already_verified",
            Error::EmailNotConfigured => "email_not_configured",
            Error::Store(_) | Error::Internal(_) => "internal_error",
        }
    }

    /// A sentence for humans. Server errors say nothing about their cause.
    pub fn message(&self) -> String {
        match self {
            Error::InvalidRequest(why) => why.clone(),
            Error::NotFound => "Nothing here.".into(),
            Error::MethodNotAllowed(allow) => format!("This path accepts only {allow}."),
            Error::RequestTimeout => "The request body did not arrive in time.".into(),
            Error::PayloadTooLarge => "The request body is too large.".into(),
            Error::UnsupportedMediaType => {
                "Send the body as JSON with Content-Type: application/json.".into()
            }
            Error::Validation(_) => "Some fields are invalid; see errors.".into(),
            Error::Unauthorized => "A valid bearer token is required.".into(),
            Error::InvalidCredentials => "The email or password is incorrect.".into(),
            Error::InvalidRefreshToken => "The refresh token is invalid or expired.".into(),
            Error::TotpRequired => "This account needs a two-factor code: send totp_code.".into(),
            Error::InvalidTotpCode | Error::InvalidTotpConfirmation => {
                "The two-factor code is wrong or was already used.".into()
            }
            Error::InvalidPassword => "The password is incorrect.".into(),
            Error::TwoFactorNotSetUp => "Set up two-factor authentication first.".into(),
            Error::ReauthenticationRequired => {
                "Confirm your password: send it in the body, or log in again.".into()
            }
            Error::TwoFactorAlreadyEnabled => "Two-factor authentication is already on.".into(),
            Error::AccountDisabled => "This account is disabled.".into(),
            Error::EmailNotVerified => "Verify your email address before logging in.".into(),
            Error::TwoFactorNotEnabled => "Two-factor authentication is not on.".into(),
            Error::RateLimited { .. } => "Too many attempts; try again later.".into(),
            Error::SessionRequired => "This needs a session token; an API key cannot do it.".into(),
            Error::InsufficientScope => "The credential lacks the required scope.".into(),
            Error::EmailTaken => "An account with this email already exists.".into(),
            Error::ApiKeyLimitReached => {
                "You have the most API keys allowed; revoke one first.".into()
            }
            Error::Overloaded { .. } => "The server is busy; try again shortly.".into(),
            Error::InvalidToken => "This link is not valid any more; ask for a new one.".into(),
            Error::EmailAlreadyVerified => "This email address is verified already.".into(),
            Error::EmailNotConfigured => "This server does not send mail.".into(),
            Error::Store(_) | Error::Internal(_) => "An internal error occurred.".into(),
        }
    }

    /// Whether this error is the server's fault (logged at error level with its cause).
    pub fn is_server_error(&self) -> bool {
        self.status() >= 500 && !matches!(self, Error::Overloaded { .. })
    }

    /// A 422 with one field error.
    pub fn field(field: &'static str, code: &'static str) -> Self {
        Error::Validation(vec![FieldError { field, code }])
    }
}

impl From<crate::crypto::password::HashError> for Error {
    fn from(e: crate::crypto::password::HashError) -> Self {
        use crate::crypto::password::HashError;
        match e {
            HashError::Busy { retry_after } => Error::Overloaded { retry_after },
            HashError::Failed(why) => Error::Internal(why),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Store(e) => write!(f, "store: {e}"),
            Error::Internal(why) => write!(f, "internal: {why}"),
            other => f.write_str(other.code()),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_the_documented_status_and_code() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::InvalidRequest("x".into()), 400, "invalid_request"),
            (Error::NotFound, 404, "not_found"),
            (Error::MethodNotAllowed("GET"), 405, "method_not_allowed"),
            (Error::RequestTimeout, 408, "request_timeout"),
            (Error::PayloadTooLarge, 413, "payload_too_large"),
            (Error::UnsupportedMediaType, 415, "unsupported_media_type"),
            (
                Error::field("email", "invalid_format"),
                422,
                "validation_failed",
            ),
            (Error::Unauthorized, 401, "unauthorized"),
            (Error::InvalidCredentials, 401, "invalid_credentials"),
            (Error::InvalidRefreshToken, 401, "invalid_refresh_token"),
            (Error::TotpRequired, 401, "totp_required"),
            (Error::AccountDisabled, 403, "account_disabled"),
            (Error::InvalidToken, 400, "invalid_token"),
            (Error::EmailAlreadyVerified, 409, "email_already_verified"),
            (Error::EmailNotConfigured, 503, "email_not_configured"),
            (Error::EmailNotVerified, 403, "email_not_verified"),
            (Error::InvalidTotpCode, 401, "invalid_totp_code"),
            (Error::InvalidTotpConfirmation, 422, "invalid_totp_code"),
            (Error::InvalidPassword, 422, "invalid_password"),
            (Error::TwoFactorNotSetUp, 422, "2fa_not_set_up"),
            (
                Error::ReauthenticationRequired,
                403,
                "reauthentication_required",
            ),
            (Error::TwoFactorAlreadyEnabled, 409, "2fa_already_enabled"),
            (Error::TwoFactorNotEnabled, 409, "2fa_not_enabled"),
            (
                Error::RateLimited {
                    retry_after: Duration::from_secs(30),
                },
                429,
                "rate_limited",
            ),
            (Error::SessionRequired, 403, "session_required"),
            (Error::InsufficientScope, 403, "insufficient_scope"),
            (Error::EmailTaken, 409, "email_taken"),
            (Error::ApiKeyLimitReached, 409, "api_key_limit_reached"),
            (
                Error::Overloaded {
                    retry_after: Duration::from_secs(1),
                },
                503,
                "overloaded",
            ),
            (
                Error::Store(StoreError::Corrupt("t".into())),
                500,
                "internal_error",
            ),
            (
                Error::Internal("secret detail".into()),
                500,
                "internal_error",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status(), e.code()), (status, code), "{e:?}");
        }
    }

    #[test]
    fn server_errors_never_describe_their_cause() {
        let e = Error::Internal("path /var/lib/x and a secret".into());
        assert!(!e.message().contains("secret"));
        assert!(!e.message().contains("/var"));
        assert!(e.is_server_error());
        assert!(!Error::Overloaded {
            retry_after: Duration::from_secs(1)
        }
        .is_server_error());
    }
}

//! The route table: every path and method the server answers, parsed in one place.
//!
//! | method | path                        | route          | access  |
//! |--------|-----------------------------|----------------|---------|
//! | POST   | /v1/auth/register           | Register       | public  |
//! | POST   | /v1/auth/login              | Login          | public  |
//! | POST   | /v1/auth/refresh            | Refresh        | public  |
//! | POST   | /v1/auth/logout             | Logout         | session |
//! | GET    | /v1/auth/me                 | Me             | any     |
//! | DELETE | /v1/auth/me                 | DeleteAccount  | session |
//! | POST   | /v1/auth/password/change    | ChangePassword | session |
//! | POST   | /v1/auth/email/verification | RequestVerification | session |
//! | POST   | /v1/auth/email/verify       | VerifyEmail    | public  |
//! | POST   | /v1/auth/email/change       | RequestEmailChange | session |
//! | POST   | /v1/auth/email/change/confirm | ConfirmEmailChange | public |
//! | POST   | /v1/auth/password/forgot    | ForgotPassword | public  |
//! | POST   | /v1/auth/password/reset     | ResetPassword  | public  |
//! | GET    | /v1/auth/sessions           | ListSessions   | session |
//! | GET    | /v1/auth/activity           | Activity       | session |
//! | DELETE | /v1/auth/sessions/{id}      | RevokeSession  | session |
//! | POST   | /v1/auth/api-keys           | CreateApiKey   | session |
//! | GET    | /v1/auth/api-keys           | ListApiKeys    | session |
//! | DELETE | /v1/auth/api-keys/{id}      | RevokeApiKey   | session |
//! | GET    | /v1/auth/verify             | Verify         | any     |
//! | POST   | /v1/auth/2fa/setup          | TotpSetup      | session |
//! | POST   | /v1/auth/2fa/verify         | TotpVerify     | session |
//! | POST   | /v1/auth/2fa/disable        | TotpDisable    | session |
//! | GET    | /.well-known/jwks.json      | Jwks           | public  |
//! | GET    | /healthz                    | Healthz        | public  |
//! | GET    | /readyz                     | Readyz         | public  |
//! | GET    | /metrics                    | Metrics        | public  |
//! | GET    | /v1/openapi.json            | OpenApi        | public  |
//! | GET, POST | /verify-email, /reset-password, /confirm-email-change | ShowPage, SubmitPage | public |
//!
//! The last row are the HTML pages mailed links open (`http::pages`), outside the API; `TABLE`
//! lists the API. The OpenAPI document describes both, and `HEAD` beside every `GET`.
//! `HEAD` is accepted wherever `GET` is, and answered like it without the body.
//! "session" routes need an access token (an API key gets 403 `session_required`); "any"
//! routes take an access token or an API key. A known path with another method is 405 with
//! `Allow`; anything else is 404.

use hyper::Method;

use crate::error::Error;
use crate::http::pages::Page;

/// One endpoint, grouped by who may call it, so that dispatch hands each group the caller it
/// needs and a handler cannot forget a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Anyone.
    Public(PublicRoute),
    /// A bearer access token or an API key.
    Any(AnyRoute),
    /// A bearer access token of a live session (an API key gets 403 `session_required`).
    Session(SessionRoute),
}

/// Routes anyone may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicRoute {
    /// Create an account.
    Register,
    /// Password login.
    Login,
    /// Rotate a refresh token.
    Refresh,
    /// Public signing keys.
    Jwks,
    /// Liveness.
    Healthz,
    /// Readiness.
    Readyz,
    /// Prometheus metrics.
    Metrics,
    /// The OpenAPI document.
    OpenApi,
    /// Prove an email address with a mailed token.
    VerifyEmail,
    /// Ask for a password-reset link.
    ForgotPassword,
    /// Set a new password with a mailed token.
    ResetPassword,
    /// Confirm an email change with a mailed token.
    ConfirmEmailChange,
    /// A mailed link opened: the page's form.
    ShowPage(Page),
    /// A mailed link's form submitted.
    SubmitPage(Page),
}

/// Routes open to an access token or an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyRoute {
    /// The caller's profile.
    Me,
    /// Who is this and may they do that: for other services and reverse proxies.
    Verify,
}

/// Routes only a session may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRoute {
    /// End the current session.
    Logout,
    /// The caller's sessions.
    ListSessions,
    /// End one of the caller's sessions.
    RevokeSession(String),
    /// Create an API key.
    CreateApiKey,
    /// The caller's API keys.
    ListApiKeys,
    /// Revoke one of the caller's API keys.
    RevokeApiKey(String),
    /// Start two-factor enrolment.
    TotpSetup,
    /// Confirm enrolment with a code.
    TotpVerify,
    /// Turn two-factor authentication off.
    TotpDisable,
    /// Replace the password.
    ChangePassword,
    /// Delete the account.
    DeleteAccount,
    /// Mail a new verification link.
    RequestVerification,
    /// Ask to move the account to another email address.
    RequestEmailChange,
    /// The caller's security events.
    Activity,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A bearer access token of a live session.
    Session,
    /// A bearer access token or an API key.
    Any,
}

/// Every (method, path) the server answers; `{id}` stands for an id segment. The OpenAPI
/// document is checked against this table, and this table against `Route::parse`.
pub const TABLE: &[(&str, &str)] = &[
    ("POST", "/v1/auth/register"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/logout"),
    ("GET", "/v1/auth/me"),
    ("DELETE", "/v1/auth/me"),
    ("POST", "/v1/auth/password/change"),
    ("POST", "/v1/auth/email/verification"),
    ("POST", "/v1/auth/email/verify"),
    ("POST", "/v1/auth/email/change"),
    ("POST", "/v1/auth/email/change/confirm"),
    ("POST", "/v1/auth/password/forgot"),
    ("POST", "/v1/auth/password/reset"),
    ("GET", "/v1/auth/sessions"),
    ("GET", "/v1/auth/activity"),
    ("DELETE", "/v1/auth/sessions/{id}"),
    ("POST", "/v1/auth/api-keys"),
    ("GET", "/v1/auth/api-keys"),
    ("DELETE", "/v1/auth/api-keys/{id}"),
    ("GET", "/v1/auth/verify"),
    ("POST", "/v1/auth/2fa/setup"),
    ("POST", "/v1/auth/2fa/verify"),
    ("POST", "/v1/auth/2fa/disable"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

const SESSIONS_PREFIX: &str = "/v1/auth/sessions/";
const API_KEYS_PREFIX: &str = "/v1/auth/api-keys/";

impl Route {
    /// Map a method and path to a route, or to the 404/405 the client deserves.
    /// `HEAD` is answered wherever `GET` is (health checkers send it).
    pub fn parse(method: &Method, path: &str) -> Result<Route, Error> {
        let method = if *method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let (allow, want, route) = match path {
            "/v1/auth/register" => ("POST", Method::POST, Route::Public(PublicRoute::Register)),
            "/v1/auth/login" => ("POST", Method::POST, Route::Public(PublicRoute::Login)),
            "/v1/auth/refresh" => ("POST", Method::POST, Route::Public(PublicRoute::Refresh)),
            "/v1/auth/logout" => ("POST", Method::POST, Route::Session(SessionRoute::Logout)),
            "/v1/auth/me" => match *method {
                Method::GET => return Ok(Route::Any(AnyRoute::Me)),
                Method::DELETE => return Ok(Route::Session(SessionRoute::DeleteAccount)),
                _ => return Err(Error::MethodNotAllowed("GET, HEAD, DELETE")),
            },
            "/v1/auth/email/verification" => (
                "POST",
                Method::POST,
                Route::Session(SessionRoute::RequestVerification),
            ),
            "/v1/auth/email/verify" => (
                "POST",
                Method::POST,
                Route::Public(PublicRoute::VerifyEmail),
            ),
            "/v1/auth/email/change" => (
                "POST",
                Method::POST,
                Route::Session(SessionRoute::RequestEmailChange),
            ),
            "/v1/auth/email/change/confirm" => (
                "POST",
                Method::POST,
                Route::Public(PublicRoute::ConfirmEmailChange),
            ),
            "/v1/auth/password/forgot" => (
                "POST",
                Method::POST,
                Route::Public(PublicRoute::ForgotPassword),
            ),
            "/v1/auth/password/reset" => (
                "POST",
                Method::POST,
                Route::Public(PublicRoute::ResetPassword),
            ),
            "/v1/auth/password/change" => (
                "POST",
                Method::POST,
                Route::Session(SessionRoute::ChangePassword),
            ),
            "/v1/auth/sessions" => (
                "GET, HEAD",
                Method::GET,
                Route::Session(SessionRoute::ListSessions),
            ),
            "/v1/auth/activity" => (
                "GET, HEAD",
                Method::GET,
                Route::Session(SessionRoute::Activity),
            ),
            "/v1/auth/api-keys" => match *method {
                Method::GET => return Ok(Route::Session(SessionRoute::ListApiKeys)),
                Method::POST => return Ok(Route::Session(SessionRoute::CreateApiKey)),
                _ => return Err(Error::MethodNotAllowed("GET, HEAD, POST")),
            },
            "/v1/auth/verify" => ("GET, HEAD", Method::GET, Route::Any(AnyRoute::Verify)),
            "/v1/auth/2fa/setup" => (
                "POST",
                Method::POST,
                Route::Session(SessionRoute::TotpSetup),
            ),
            "/v1/auth/2fa/verify" => (
                "POST",
                Method::POST,
                Route::Session(SessionRoute::TotpVerify),
            ),
            "/v1/auth/2fa/disable" => (
                "POST",
                Method::POST,
                Route::Session(SessionRoute::TotpDisable),
            ),
            "/.well-known/jwks.json" => {
                ("GET, HEAD", Method::GET, Route::Public(PublicRoute::Jwks))
            }
            "/healthz" => (
                "GET, HEAD",
                Method::GET,
                Route::Public(PublicRoute::Healthz),
            ),
            "/readyz" => ("GET, HEAD", Method::GET, Route::Public(PublicRoute::Readyz)),
            "/metrics" => (
                "GET, HEAD",
                Method::GET,
                Route::Public(PublicRoute::Metrics),
            ),
            "/v1/openapi.json" => (
                "GET, HEAD",
                Method::GET,
                Route::Public(PublicRoute::OpenApi),
            ),
            p => {
                if let Some(page) = Page::at(p) {
                    return match *method {
                        Method::GET => Ok(Route::Public(PublicRoute::ShowPage(page))),
                        Method::POST => Ok(Route::Public(PublicRoute::SubmitPage(page))),
                        _ => Err(Error::MethodNotAllowed("GET, HEAD, POST")),
                    };
                }
                if let Some(id) = p.strip_prefix(SESSIONS_PREFIX).filter(|id| is_id(id)) {
                    (
                        "DELETE",
                        Method::DELETE,
                        Route::Session(SessionRoute::RevokeSession(id.to_string())),
                    )
                } else if let Some(id) = p.strip_prefix(API_KEYS_PREFIX).filter(|id| is_id(id)) {
                    (
                        "DELETE",
                        Method::DELETE,
                        Route::Session(SessionRoute::RevokeApiKey(id.to_string())),
                    )
                } else {
                    return Err(Error::NotFound);
                }
            }
        };
        if *method == want {
            Ok(route)
        } else {
            Err(Error::MethodNotAllowed(allow))
        }
    }

    /// Who may call this route.
    pub fn access(&self) -> Access {
        match self {
            Route::Public(_) => Access::Public,
            Route::Any(_) => Access::Any,
            Route::Session(_) => Access::Session,
        }
    }

    /// A fixed name for logs: never the raw path, which may carry ids or junk.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Public(r) => match r {
                PublicRoute::Register => "register",
                PublicRoute::Login => "login",
                PublicRoute::Refresh => "refresh",
                PublicRoute::Jwks => "jwks",
                PublicRoute::Healthz => "healthz",
                PublicRoute::Readyz => "readyz",
                PublicRoute::Metrics => "metrics",
                PublicRoute::OpenApi => "openapi",
                PublicRoute::VerifyEmail => "verify_email",
                PublicRoute::ForgotPassword => "forgot_password",
                PublicRoute::ResetPassword => "reset_password",
                PublicRoute::ConfirmEmailChange => "confirm_email_change",
                PublicRoute::ShowPage(p) => match p {
                    Page::VerifyEmail => "page_verify_email",
                    Page::ResetPassword => "page_reset_password",
                    Page::ConfirmEmailChange => "page_confirm_email_change",
                },
                PublicRoute::SubmitPage(p) => match p {
                    Page::VerifyEmail => "page_verify_email_submit",
                    Page::ResetPassword => "page_reset_password_submit",
                    Page::ConfirmEmailChange => "page_confirm_email_change_submit",
                },
            },
            Route::Any(AnyRoute::Me) => "me",
            Route::Any(AnyRoute::Verify) => "verify",
            Route::Session(r) => match r {
                SessionRoute::Logout => "logout",
                SessionRoute::ListSessions => "list_sessions",
                SessionRoute::RevokeSession(_) => "revoke_session",
                SessionRoute::CreateApiKey => "create_api_key",
                SessionRoute::ListApiKeys => "list_api_keys",
                SessionRoute::RevokeApiKey(_) => "revoke_api_key",
                SessionRoute::TotpSetup => "totp_setup",
                SessionRoute::TotpVerify => "totp_verify",
                SessionRoute::TotpDisable => "totp_disable",
                SessionRoute::ChangePassword => "change_password",
                SessionRoute::DeleteAccount => "delete_account",
                SessionRoute::RequestVerification => "request_verification",
                SessionRoute::RequestEmailChange => "request_email_change",
                SessionRoute::Activity => "activity",
            },
        }
    }
}

/// Ids we hand out are short and plain; anything else cannot name one of them.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table() {
        let ok = [
            (
                Method::POST,
                "/v1/auth/register",
                Route::Public(PublicRoute::Register),
            ),
            (
                Method::POST,
                "/v1/auth/login",
                Route::Public(PublicRoute::Login),
            ),
            (
                Method::POST,
                "/v1/auth/refresh",
                Route::Public(PublicRoute::Refresh),
            ),
            (
                Method::POST,
                "/v1/auth/logout",
                Route::Session(SessionRoute::Logout),
            ),
            (Method::GET, "/v1/auth/me", Route::Any(AnyRoute::Me)),
            (
                Method::GET,
                "/v1/auth/sessions",
                Route::Session(SessionRoute::ListSessions),
            ),
            (
                Method::DELETE,
                "/v1/auth/sessions/ses-abc",
                Route::Session(SessionRoute::RevokeSession("ses-abc".into())),
            ),
            (
                Method::GET,
                "/.well-known/jwks.json",
                Route::Public(PublicRoute::Jwks),
            ),
            (Method::GET, "/healthz", Route::Public(PublicRoute::Healthz)),
            (Method::GET, "/readyz", Route::Public(PublicRoute::Readyz)),
            (
                Method::POST,
                "/v1/auth/api-keys",
                Route::Session(SessionRoute::CreateApiKey),
            ),
            (
                Method::GET,
                "/v1/auth/api-keys",
                Route::Session(SessionRoute::ListApiKeys),
            ),
            (
                Method::DELETE,
                "/v1/auth/api-keys/key-abc",
                Route::Session(SessionRoute::RevokeApiKey("key-abc".into())),
            ),
            (Method::GET, "/v1/auth/verify", Route::Any(AnyRoute::Verify)),
            (
                Method::POST,
                "/v1/auth/2fa/setup",
                Route::Session(SessionRoute::TotpSetup),
            ),
            (
                Method::POST,
                "/v1/auth/2fa/verify",
                Route::Session(SessionRoute::TotpVerify),
            ),
            (
                Method::POST,
                "/v1/auth/2fa/disable",
                Route::Session(SessionRoute::TotpDisable),
            ),
        ];
        for (m, p, r) in ok {
            assert_eq!(Route::parse(&m, p).expect(p), r);
        }
    }

    #[test]
    fn every_entry_of_the_table_parses_and_nothing_else_of_its_paths_does() {
        for (method, path) in TABLE {
            let path = path.replace("{id}", "x-1");
            let m: Method = method.parse().expect("method");
            assert!(Route::parse(&m, &path).is_ok(), "{method} {path}");
            for other in [
                Method::GET,
                Method::POST,
                Method::DELETE,
                Method::PUT,
                Method::PATCH,
            ] {
                let listed = TABLE
                    .iter()
                    .any(|(tm, tp)| *tm == other.as_str() && tp.replace("{id}", "x-1") == path);
                assert_eq!(
                    Route::parse(&other, &path).is_ok(),
                    listed,
                    "{other} {path}"
                );
            }
        }
    }

    #[test]
    fn the_mailed_link_pages_answer_get_head_and_post() {
        for (path, page) in crate::http::pages::PATHS {
            for (m, want) in [
                (Method::GET, PublicRoute::ShowPage(*page)),
                (Method::HEAD, PublicRoute::ShowPage(*page)),
                (Method::POST, PublicRoute::SubmitPage(*page)),
            ] {
                assert_eq!(Route::parse(&m, path).expect(path), Route::Public(want));
            }
            assert!(matches!(
                Route::parse(&Method::DELETE, path),
                Err(Error::MethodNotAllowed("GET, HEAD, POST"))
            ));
            assert!(Route::parse(&Method::GET, &format!("{path}/x")).is_err());
        }
    }

    #[test]
    fn head_is_answered_wherever_get_is() {
        for (method, path) in TABLE {
            let path = path.replace("{id}", "x-1");
            let head = Route::parse(&Method::HEAD, &path);
            if *method == "GET" {
                assert_eq!(head.ok(), Route::parse(&Method::GET, &path).ok(), "{path}");
            }
        }
        assert!(matches!(
            Route::parse(&Method::HEAD, "/v1/auth/login"),
            Err(Error::MethodNotAllowed("POST"))
        ));
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        for (m, p, allow) in [
            (Method::GET, "/v1/auth/login", "POST"),
            (Method::PUT, "/v1/auth/register", "POST"),
            (Method::TRACE, "/v1/auth/me", "GET, HEAD, DELETE"),
            (Method::POST, "/v1/auth/sessions/ses-1", "DELETE"),
            (Method::DELETE, "/v1/auth/api-keys", "GET, HEAD, POST"),
            (Method::POST, "/v1/auth/verify", "GET, HEAD"),
            (Method::GET, "/v1/auth/2fa/setup", "POST"),
        ] {
            match Route::parse(&m, p) {
                Err(Error::MethodNotAllowed(a)) => assert_eq!(a, allow, "{p}"),
                other => panic!("{m} {p}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        for p in [
            "/",
            "/v1/auth/me/",
            "/v1/auth",
            "/V1/auth/me",
            "/v1/auth/sessions/",
            "/v1/auth/sessions/a/b",
            "/v1/auth/sessions/..%2f",
            "/v1/auth/sessions/%00",
        ] {
            assert!(
                matches!(Route::parse(&Method::GET, p), Err(Error::NotFound)),
                "{p}"
            );
        }
        let long = format!("/v1/auth/sessions/{}", "a".repeat(65));
        assert!(matches!(
            Route::parse(&Method::DELETE, &long),
            Err(Error::NotFound)
        ));
    }

    #[test]
    fn session_routes_need_a_session() {
        assert_eq!(Route::Any(AnyRoute::Me).access(), Access::Any);
        assert_eq!(Route::Any(AnyRoute::Verify).access(), Access::Any);
        assert_eq!(
            Route::Session(SessionRoute::CreateApiKey).access(),
            Access::Session
        );
        assert_eq!(
            Route::Session(SessionRoute::Logout).access(),
            Access::Session
        );
        assert_eq!(Route::Public(PublicRoute::Login).access(), Access::Public);
    }
}

//! The three pages mailed links open (`/verify-email`, `/reset-password`,
//! `/confirm-email-change`): small server-rendered HTML forms that work without JavaScript and
//! run the same use cases as the API.
//!
//! Opening a link never acts: mail scanners and link previews fetch URLs, so `GET` only shows a
//! form that carries the token in a hidden field, and the act is the form's `POST`, whose URL
//! has no query. The token thus leaves the address bar's next request, `Referer` is never sent
//! (`Referrer-Policy` and a `<meta>` both say `no-referrer`), the CSP allows no script, only our
//! one inline style (by hash) and forms posting back to us, and request logs name routes, never
//! paths or queries.

use std::sync::LazyLock;

use data_encoding::BASE64;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::crypto::random;
use crate::domain::password::Password;
use crate::error::Error;
use crate::html::escape;
use crate::http::response::Body;
use crate::http::Ctx;
use crate::secret::Secret;
use crate::service::email;
use crate::service::state::AppState;

/// One of the pages a mailed link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Prove the email address.
    VerifyEmail,
    /// Choose a new password.
    ResetPassword,
    /// Move the account to the new address.
    ConfirmEmailChange,
}

/// Every page's path, relative to `public_url` as mail links are.
pub const PATHS: &[(&str, Page)] = &[
    ("/verify-email", Page::VerifyEmail),
    ("/reset-password", Page::ResetPassword),
    ("/confirm-email-change", Page::ConfirmEmailChange),
];

impl Page {
    /// The page served at `path`, if any.
    pub fn at(path: &str) -> Option<Page> {
        PATHS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, page)| *page)
    }

    /// The form's `action`: relative, so that it resolves under `public_url`'s path when a proxy
    /// serves us below a prefix, and drops the link's query.
    fn action(self) -> &'static str {
        match self {
            Page::VerifyEmail => "verify-email",
            Page::ResetPassword => "reset-password",
            Page::ConfirmEmailChange => "confirm-email-change",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::VerifyEmail => "Confirm your email address",
            Page::ResetPassword => "Choose a new password",
            Page::ConfirmEmailChange => "Confirm your new email address",
        }
    }
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
main{max-width:26rem;margin:8vh auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.3rem;margin-top:0}label{display:block;margin-top:1rem;font-weight:600}\
small{font-weight:400;color:#555}input{width:100%;box-sizing:border-box;padding:.5rem;font:inherit}\
button{margin-top:1.5rem;padding:.6rem 1.2rem;font:inherit;cursor:pointer}\
.error{color:#a4161a}.done{color:#146c2e}";

/// The page's CSP: nothing but our inline style, forms that post back to us, no framing.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = BASE64.encode(&random::sha256(STYLE.as_bytes()));
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'"))
});

/// A token as we issue them: 43 base64url characters. Anything else cannot be one, so it is
/// never echoed into a page.
fn plausible_token(t: &str) -> bool {
    (16..=128).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET` on a page: the form, with the link's token moved into it.
pub fn show(state: &AppState, page: Page, query: Option<&str>) -> Response<Body> {
    let token = query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    match token {
        Some(t) if plausible_token(&t) => form(state, page, &t, None, StatusCode::OK),
        _ => outcome(
            state,
            page,
            StatusCode::BAD_REQUEST,
            "This link is incomplete or damaged. Open it again from the mail, or ask for a new one.",
            false,
        ),
    }
}

/// `POST` of a page's form: run the use case and show how it went.
pub async fn submit(
    state: &AppState,
    page: Page,
    req: Request<Incoming>,
    ctx: Ctx<()>,
) -> Response<Body> {
    let fields = match ctx.form(req).await {
        Ok(f) => f,
        Err(e) => return failure(state, page, &e),
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let token = field("token");
    if !plausible_token(token) {
        return failure(state, page, &Error::InvalidToken);
    }
    let secret = Secret::new(token.to_string());
    let result = match page {
        Page::VerifyEmail => email::verify(state, secret, &ctx.client)
            .await
            .map(|()| "Your email address is confirmed. You can close this page."),
        Page::ConfirmEmailChange => email::confirm_email_change(state, secret, &ctx.client)
            .await
            .map(|()| "Your email address is changed: sign in with the new one from now on."),
        Page::ResetPassword => {
            let password = field("password");
            if password != field("password_confirm") {
                return form(
                    state,
                    page,
                    token,
                    Some("The two passwords differ. Type the same new password twice."),
                    StatusCode::UNPROCESSABLE_ENTITY,
                );
            }
            let code = Some(field("totp_code").trim())
                .filter(|c| !c.is_empty())
                .map(|c| Secret::new(c.to_string()));
            email::reset_password(
                state,
                secret,
                Password::new(password.to_string()),
                code,
                &ctx.client,
            )
            .await
            .map(|()| {
                "Your password is changed, and every signed-in device was signed out. \
                 Sign in with the new password."
            })
        }
    };
    match result {
        Ok(done) => outcome(state, page, StatusCode::OK, done, true),
        Err(e) if retry_in_form(&e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            form(state, page, token, Some(&retry_message(state, &e)), status)
        }
        Err(e) => failure(state, page, &e),
    }
}

/// Errors the same form can fix: the token is still good.
fn retry_in_form(e: &Error) -> bool {
    matches!(
        e,
        Error::Validation(_) | Error::TotpRequired | Error::InvalidTotpCode
    )
}

fn retry_message(state: &AppState, e: &Error) -> String {
    match e {
        Error::Validation(fields) => match fields.first().map(|f| f.code) {
            Some("too_short") => format!(
                "The password is too short: use at least {} characters.",
                state.config.passwords.min_length
            ),
            Some("too_long") => "The password is too long: use at most 128 characters.".into(),
            Some("password_too_common") => {
                "This password is too common to be safe: choose another.".into()
            }
            _ => "The password cannot be used: choose another.".into(),
        },
        Error::TotpRequired => {
            "Two-factor authentication is on: enter a code from your authenticator app, or a backup code."
                .into()
        }
        other => other.message(),
    }
}

/// A failed act: the error's own status and human message, as the API would say it.
fn failure(state: &AppState, page: Page, e: &Error) -> Response<Body> {
    if e.is_server_error() {
        tracing::error!(error = %e, "page request failed");
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = outcome(state, page, status, &e.message(), false);
    if let Error::RateLimited { retry_after } | Error::Overloaded { retry_after } = e {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after.as_secs().max(1)),
        );
    }
    resp
}

fn form(
    state: &AppState,
    page: Page,
    token: &str,
    problem: Option<&str>,
    status: StatusCode,
) -> Response<Body> {
    let mut body = String::with_capacity(2048);
    if let Some(p) = problem {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(p)
        ));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"token\" value=\"{}\">",
        page.action(),
        escape(token)
    ));
    match page {
        Page::VerifyEmail => body.push_str(
            "<p>Confirm that this email address is yours.</p>\
             <button type=\"submit\">Confirm my email address</button>",
        ),
        Page::ConfirmEmailChange => body.push_str(
            "<p>Make this email address the one your account signs in with.</p>\
             <button type=\"submit\">Use this email address</button>",
        ),
        Page::ResetPassword => {
            let min = state.config.passwords.min_length;
            body.push_str(&format!(
                "<label for=\"password\">New password</label>\
                 <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" minlength=\"{min}\" maxlength=\"128\" required>\
                 <label for=\"password_confirm\">The new password again</label>\
                 <input id=\"password_confirm\" name=\"password_confirm\" type=\"password\" autocomplete=\"new-password\" minlength=\"{min}\" maxlength=\"128\" required>\
                 <label for=\"totp_code\">Two-factor code <small>(only if two-factor authentication is on: a code from your app or a backup code)</small></label>\
                 <input id=\"totp_code\" name=\"totp_code\" autocomplete=\"one-time-code\" maxlength=\"32\">\
                 <button type=\"submit\">Set the new password</button>"
            ));
        }
    }
    body.push_str("</form>");
    html(state, page.title(), &body, status)
}

fn outcome(
    state: &AppState,
    page: Page,
    status: StatusCode,
    text: &str,
    done: bool,
) -> Response<Body> {
    let class = if done { "done" } else { "error" };
    let body = format!("<p class=\"{class}\" role=\"status\">{}</p>", escape(text));
    html(state, page.title(), &body, status)
}

fn html(state: &AppState, title: &str, main: &str, status: StatusCode) -> Response<Body> {
    let issuer = escape(&state.config.issuer);
    let title = escape(title);
    let doc = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><meta name=\"robots\" content=\"noindex\">\
         <title>{title} · {issuer}</title><style>{STYLE}</style></head>\
         <body><main><h1>{title}</h1>{main}</main></body></html>"
    );
    let mut resp = Response::new(Body::from(doc));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_token_shaped_values_reach_a_page() {
        assert!(plausible_token(&random::token()));
        for bad in [
            "",
            "short",
            "a\"><script>",
            &"a".repeat(129),
            "tok en_0123456789abcdef",
        ] {
            assert!(!plausible_token(bad), "{bad}");
        }
    }

    #[test]
    fn the_csp_names_the_hash_of_the_one_inline_style() {
        let csp = CSP.to_str().expect("ascii");
        let hash = BASE64.encode(&random::sha256(STYLE.as_bytes()));
        assert!(csp.contains(&format!("style-src 'sha256-{hash}'")), "{csp}");
        assert!(csp.starts_with("default-src 'none'"));
        assert!(!csp.contains("script-src") && !csp.contains("unsafe"));
    }

    #[test]
    fn pages_resolve_by_exact_path() {
        for (path, page) in PATHS {
            assert_eq!(Page::at(path), Some(*page));
            assert_eq!(format!("/{}", page.action()), *path);
        }
        assert_eq!(Page::at("/reset-password/"), None);
    }
}

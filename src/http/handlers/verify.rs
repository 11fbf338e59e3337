//! `verify`: "who is this and may they do that?" for other services and reverse proxies.
//!
//! Works unchanged as the target of nginx `auth_request`, Traefik `forwardAuth` and Caddy
//! `forward_auth`: it reads only the Authorization header and the `scope` query parameter,
//! ignores every other forwarded header and any body, and answers in headers as well as JSON.

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::domain::models::{Credential, Principal};
use crate::error::Error;
use crate::http::dto::VerifyResponse;
use crate::http::response::{json, Body};
use crate::http::Ctx;
use crate::service::credentials;
use crate::service::state::AppState;

/// `GET /v1/auth/verify[?scope=S]` → 200 with `X-Auth-User-Id`, `X-Auth-Credential`,
/// `X-Auth-Scopes`; 401 for a bad credential; 403 `insufficient_scope`.
pub fn verify(
    state: &AppState,
    req: &Request<Incoming>,
    ctx: Ctx<Principal>,
) -> Result<Response<Body>, Error> {
    let who = &ctx.caller;
    let wanted = scope_params(req.uri().query().unwrap_or_default())?;
    credentials::require_scopes(state, who, &wanted)?;
    let scopes = credentials::scopes(state, who);
    let (credential, key_id) = match &who.credential {
        Credential::Session { .. } => ("session", None),
        Credential::ApiKey { key_id, .. } => ("api_key", Some(key_id.as_str())),
    };
    let mut resp = json(
        StatusCode::OK,
        &VerifyResponse {
            user_id: &who.user.id,
            credential,
            scopes,
            key_id,
        },
    );
    let h = resp.headers_mut();
    let value =
        |s: &str| HeaderValue::from_str(s).map_err(|_| Error::Internal("header value".into()));
    h.insert(X_AUTH_USER_ID, value(&who.user.id)?);
    h.insert(X_AUTH_CREDENTIAL, HeaderValue::from_static(credential));
    h.insert(X_AUTH_SCOPES, value(&scopes.join(" "))?);
    if let Some(id) = key_id {
        h.insert(X_AUTH_KEY_ID, value(id)?);
    }
    Ok(resp)
}

// Named once: a `&str` name is parsed and checked on every insert.
const X_AUTH_USER_ID: HeaderName = HeaderName::from_static("x-auth-user-id");
const X_AUTH_CREDENTIAL: HeaderName = HeaderName::from_static("x-auth-credential");
const X_AUTH_SCOPES: HeaderName = HeaderName::from_static("x-auth-scopes");
const X_AUTH_KEY_ID: HeaderName = HeaderName::from_static("x-auth-key-id");

/// Every `scope` parameter of the query, form-decoded (names too: `sc%6Fpe` is `scope`); each
/// may repeat and may hold several scopes separated by spaces, as OAuth writes them, and all are
/// required. An empty `scope`, or a parameter that does not decode, is 400: a proxy rule with a
/// typo must not silently check nothing. Other parameters are ignored.
pub(crate) fn scope_params(query: &str) -> Result<Vec<String>, Error> {
    let bad = |why: &str| Error::InvalidRequest(format!("The query is not valid: {why}."));
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k).ok_or_else(|| bad("a parameter name does not decode"))?;
        if k != "scope" {
            continue;
        }
        let v = percent_decode(v).ok_or_else(|| bad("the scope parameter does not decode"))?;
        let scopes: Vec<String> = v
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if scopes.is_empty() {
            return Err(bad("the scope parameter is empty"));
        }
        out.extend(scopes);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scope_parameters() {
        assert_eq!(scope_params("").expect("ok"), Vec::<String>::new());
        assert_eq!(
            scope_params("scope=databases:read").expect("ok"),
            ["databases:read"]
        );
        assert_eq!(
            scope_params("scope=databases%3Aread&x=1").expect("ok"),
            ["databases:read"]
        );
        assert_eq!(
            scope_params("scope=a+b&scope=c%20d").expect("ok"),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            scope_params("sc%6Fpe=a&scope=b").expect("ok"),
            ["a", "b"],
            "names are decoded too"
        );
        assert_eq!(scope_params("x=&&y").expect("ok"), Vec::<String>::new());
        for bad in [
            "scope=",
            "scope",
            "scope=+",
            "scope=%20",
            "scope=a&scope=",
            "sc%zzpe=a",
        ] {
            assert!(scope_params(bad).is_err(), "{bad}");
        }
        assert!(scope_params("scope=%zz").is_err());
        assert!(scope_params("scope=%ff").is_err());
        assert!(scope_params("scope=%4").is_err());
    }
}

//! `verify`: "who is this and may they do that?" for other services and reverse proxies.
//!
//! Works unchanged as the target of nginx `auth_request`, Traefik `forwardAuth` and Caddy
//! `forward_auth`: it reads only the Authorization header and the `scope` query parameter,
//! ignores every other forwarded header and any body, and answers in headers as well as JSON.

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};

use crate::domain::models::Credential;
use crate::error::Error;
use crate::http::dto::VerifyResponse;
use crate::http::response::{json, Body};
use crate::http::Ctx;
use crate::service::credentials;
use crate::state::AppState;

/// `GET /v1/auth/verify[?scope=S]` → 200 with `X-Auth-User-Id`, `X-Auth-Credential`,
/// `X-Auth-Scopes`; 401 for a bad credential; 403 `insufficient_scope`.
pub fn verify(
    state: &AppState,
    req: &Request<Incoming>,
    ctx: Ctx,
) -> Result<Response<Body>, Error> {
    let who = ctx.caller()?;
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
    h.insert("x-auth-user-id", value(&who.user.id)?);
    h.insert("x-auth-credential", HeaderValue::from_static(credential));
    h.insert("x-auth-scopes", value(&scopes.join(" "))?);
    if let Some(id) = key_id {
        h.insert("x-auth-key-id", value(id)?);
    }
    Ok(resp)
}

/// Every `scope` parameter of the query, percent-decoded; each may hold several scopes
/// separated by spaces, as OAuth writes them. Other parameters are ignored.
pub(crate) fn scope_params(query: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "scope" {
            let v = percent_decode(v)
                .ok_or_else(|| Error::InvalidRequest("The scope parameter is not valid.".into()))?;
            out.extend(v.split(' ').filter(|s| !s.is_empty()).map(str::to_string));
        }
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
        assert!(scope_params("scope=%zz").is_err());
        assert!(scope_params("scope=%ff").is_err());
        assert!(scope_params("scope=%4").is_err());
    }
}

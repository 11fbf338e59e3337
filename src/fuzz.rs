//! Entry points for the fuzz targets in `fuzz/`, one per parser that faces the network. Each
//! takes arbitrary bytes and must return without panicking; `tests/fuzz_regressions.rs` replays
//! the saved inputs through the same functions on every `cargo test`.

use std::sync::OnceLock;

use hyper::header::{HeaderMap, HeaderValue};
use hyper::Method;

use crate::crypto::keys::{KeyPair, Keyring};
use crate::crypto::{api_key, backup_codes, jwt, totp};
use crate::domain::duration::parse_duration;
use crate::domain::types::{parse_expires_in, Company, DisplayName, Email, KeyName, Scopes};
use crate::http::body::parse_json;
use crate::http::dto::{
    CreateApiKeyRequest, LoginRequest, RefreshRequest, RegisterRequest, TotpDisableRequest,
    TotpSetupRequest, TotpVerifyRequest,
};
use crate::http::router::Route;

/// Request bodies into wire types, then into domain types, as the handlers do.
pub fn request_body(data: &[u8]) {
    if let Ok(r) = parse_json::<RegisterRequest>(data) {
        let email = r.email.as_deref().map(Email::parse);
        let _ = r.name.as_deref().map(DisplayName::parse);
        let _ = Company::parse(r.company.as_deref());
        if let Some(p) = r.password {
            let email = email.and_then(Result::ok);
            let _ = p.check_new(8, email.as_ref().map(Email::as_str));
        }
    }
    if let Ok(r) = parse_json::<LoginRequest>(data) {
        let _ = r.email.as_deref().map(Email::parse);
        let _ = r.password.map(|p| p.within_max_length());
    }
    let _ = parse_json::<RefreshRequest>(data);
    if let Ok(r) = parse_json::<CreateApiKeyRequest>(data) {
        let _ = r.name.as_deref().map(KeyName::parse);
        let allowed = ["databases:read".to_string(), "databases:write".to_string()];
        let _ = r.scopes.map(|s| Scopes::parse(s, &allowed));
        let day = std::time::Duration::from_secs(86_400);
        let _ = parse_expires_in(r.expires_in.as_deref(), day, day * 3650);
    }
    let _ = parse_json::<TotpSetupRequest>(data);
    let _ = parse_json::<TotpVerifyRequest>(data);
    let _ = parse_json::<TotpDisableRequest>(data);
}

fn keyring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| {
        Keyring::new(vec![(KeyPair::from_seed(&[7; 32]), None)], 900)
            .unwrap_or_else(|| unreachable!())
    })
}

/// Bearer credentials: the Authorization header, then a JWT or an API key.
pub fn bearer(data: &[u8]) {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        headers.insert(hyper::header::AUTHORIZATION, v);
    }
    let token = match crate::http::auth::bearer(&headers) {
        Ok(t) => t.to_string(),
        Err(_) => String::from_utf8_lossy(data).into_owned(),
    };
    let _ = jwt::verify(&token, keyring(), "cloudheed-auth", 1_000_000);
    let _ = api_key::well_formed(&token, "ch_live_");
}

/// Durations and rates, as config and `expires_in` carry them.
pub fn duration(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let _ = parse_duration(&s);
    let _ = crate::config::Rate::parse(&s);
}

/// Second-factor codes: TOTP at any time, backup-code normalisation.
pub fn totp_code(data: &[u8]) {
    let (time, code) = data.split_at(data.len().min(8));
    let mut t = [0u8; 8];
    t[..time.len()].copy_from_slice(time);
    let now = i64::from_le_bytes(t);
    let code = String::from_utf8_lossy(code);
    let _ = totp::matching_step(b"12345678901234567890", &code, now, Some(now / 30 - 1));
    let _ = backup_codes::normalize(&code);
}

/// The router: a method chosen by the first byte, the rest as path and query.
pub fn router(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let methods = [
        Method::GET,
        Method::POST,
        Method::DELETE,
        Method::PUT,
        Method::OPTIONS,
        Method::TRACE,
    ];
    let method = &methods[usize::from(*first) % methods.len()];
    let target = String::from_utf8_lossy(rest);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let _ = Route::parse(method, path);
    let _ = crate::http::handlers::verify::scope_params(query);
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_points_take_anything() {
        for input in [
            &b""[..],
            b"\xff\xfe",
            b"{}",
            b"{\"email\":\"a@b.co\",\"password\":\"x\"}",
            b"Bearer a.b.c",
        ] {
            super::request_body(input);
            super::bearer(input);
            super::duration(input);
            super::totp_code(input);
            super::router(input);
        }
    }
}

//! CORS for browser clients on other origins: off unless `cors.allowed_origins` lists the
//! origin, then that exact origin (never `*`) may call the API with a bearer token. No cookies
//! are used, so credentials mode is never allowed.

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use super::response::Body;

/// The request's `Origin`, if it is one of `allowed`.
pub fn allowed_origin(headers: &HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    if allowed.is_empty() {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    allowed.iter().any(|a| a == text).then(|| origin.clone())
}

/// The answer to a preflight (`OPTIONS` with an allowed `Origin`) for a path that accepts
/// `allow`.
pub fn preflight(origin: HeaderValue, allow: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(allow),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    decorate(&mut resp, origin);
    resp
}

/// Let the allowed origin read this response.
pub fn decorate(resp: &mut Response<Body>, origin: HeaderValue) {
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-request-id, retry-after, www-authenticate"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_are_allowed() {
        let allowed = vec!["https://app.example.com".to_string()];
        let mut h = HeaderMap::new();
        assert!(allowed_origin(&h, &allowed).is_none());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(allowed_origin(&h, &allowed).is_none());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example.com"),
        );
        assert_eq!(
            allowed_origin(&h, &allowed)
                .as_ref()
                .and_then(|v| v.to_str().ok()),
            Some("https://app.example.com")
        );
        assert!(
            allowed_origin(&h, &[]).is_none(),
            "off when the list is empty"
        );
    }
}

//! Building responses: JSON bodies, the headers every response carries, and the one function that
//! turns an `Error` into a response.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::error::Error;

/// The body type of every response.
pub type Body = Full<Bytes>;

#[derive(Serialize)]
struct ErrorBody<'a> {
    message_code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<FieldErrorBody>>,
}

#[derive(Serialize)]
struct FieldErrorBody {
    field: &'static str,
    message_code: &'static str,
}

/// `{"message_code": code}`: the answer of every use case that has nothing else to say.
pub fn message(status: StatusCode, code: &'static str) -> Response<Body> {
    json(
        status,
        &crate::http::dto::MessageResponse { message_code: code },
    )
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    // Serialising our own response types cannot fail; an empty object is still valid JSON.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    // Room for the security headers `harden` adds and a handler's own, so the map is not
    // regrown on every response.
    resp.headers_mut().reserve(16);
    resp
}

/// The response for an error: `{message_code, message[, errors]}` with the headers its status
/// needs. Server errors say only that something failed; the cause goes to the log.
pub fn error(err: &Error) -> Response<Body> {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let errors = match err {
        Error::Validation(list) => Some(
            list.iter()
                .map(|f| FieldErrorBody {
                    field: f.field,
                    message_code: f.code,
                })
                .collect(),
        ),
        _ => None,
    };
    let mut resp = json(
        status,
        &ErrorBody {
            message_code: err.code(),
            message: err.message(),
            errors,
        },
    );
    let h = resp.headers_mut();
    if status == StatusCode::UNAUTHORIZED {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Error::MethodNotAllowed(allow) = err {
        h.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if let Error::Overloaded { retry_after } | Error::RateLimited { retry_after } = err {
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after.as_secs().max(1)),
        );
    }
    resp
}

const X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Headers on every response, success or error. `Cache-Control: no-store` unless a handler chose
/// otherwise: most responses carry tokens or personal data.
pub fn harden(resp: &mut Response<Body>, request_id: &str) {
    let h = resp.headers_mut();
    h.entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/json"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The mailed-link pages bring their own (one inline style, forms posting back).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(X_REQUEST_ID, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(resp: Response<Body>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn internal_errors_show_nothing_of_their_cause() {
        let resp = error(&Error::Internal("redb: /var/lib/secret path".into()));
        assert_eq!(resp.status(), 500);
        let v = body_json(resp).await;
        assert_eq!(v["message_code"], "internal_error");
        let text = v.to_string();
        assert!(!text.contains("redb") && !text.contains("/var"), "{text}");
    }

    #[tokio::test]
    async fn validation_errors_list_fields() {
        let resp = error(&Error::field("password", "too_short"));
        assert_eq!(resp.status(), 422);
        let v = body_json(resp).await;
        assert_eq!(v["errors"][0]["field"], "password");
        assert_eq!(v["errors"][0]["message_code"], "too_short");
    }

    #[test]
    fn status_specific_headers() {
        assert_eq!(
            error(&Error::Unauthorized).headers()["www-authenticate"],
            "Bearer"
        );
        assert_eq!(
            error(&Error::InvalidCredentials).headers()["www-authenticate"],
            "Bearer"
        );
        assert_eq!(
            error(&Error::MethodNotAllowed("GET")).headers()["allow"],
            "GET"
        );
        let busy = error(&Error::Overloaded {
            retry_after: std::time::Duration::from_secs(2),
        });
        assert_eq!(busy.headers()["retry-after"], "2");
    }

    #[test]
    fn every_response_is_hardened() {
        let mut resp = error(&Error::NotFound);
        harden(&mut resp, "req-1");
        let h = resp.headers();
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-request-id"], "req-1");
    }
}

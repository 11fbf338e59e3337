//! Reading request bodies, capped in size and time: JSON for the API, parsed strictly into wire
//! types, and the form fields of the mailed-link pages.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header;
use hyper::Request;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Read the body of `req` as JSON into `T`.
///
/// 415 unless the body is declared `application/json`; 413 above `max_bytes` (by
/// `Content-Length` before reading, or while reading a chunked body); 408 when it does not arrive
/// within `timeout`; 400 for anything that is not exactly one JSON document of the right shape.
pub async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    max_bytes: usize,
    timeout: Duration,
) -> Result<T, Error> {
    let bytes = read_as(req, "application/json", max_bytes, timeout).await?;
    parse_json(&bytes)
}

/// Read an HTML form's body (`application/x-www-form-urlencoded`) into its fields, in order,
/// under the same limits as `read_json`. Broken escapes decode lossily: every field we read is
/// checked afterwards anyway.
pub async fn read_form(
    req: Request<Incoming>,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Vec<(String, String)>, Error> {
    let bytes = read_as(req, "application/x-www-form-urlencoded", max_bytes, timeout).await?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The whole body, if it is declared as `media_type` and fits the limits.
async fn read_as(
    req: Request<Incoming>,
    media_type: &str,
    max_bytes: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, Error> {
    let declared_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(media_type));
    if !declared_type {
        return Err(Error::UnsupportedMediaType);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(Error::PayloadTooLarge);
    }
    let collected =
        tokio::time::timeout(timeout, Limited::new(req.into_body(), max_bytes).collect())
            .await
            .map_err(|_| Error::RequestTimeout)?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::PayloadTooLarge),
        Err(_) => Err(Error::InvalidRequest(
            "The request body could not be read.".into(),
        )),
    }
}

/// Like `read_json`, for endpoints whose body is optional: no body at all (no length, or length
/// 0, and not chunked) is `None`.
pub async fn read_optional_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Option<T>, Error> {
    let h = req.headers();
    let length = h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    let chunked = h.contains_key(header::TRANSFER_ENCODING);
    if !chunked && length.is_none_or(|l| l.trim() == "0") {
        return Ok(None);
    }
    read_json(req, max_bytes, timeout).await.map(Some)
}

/// Parse one JSON document into `T`. The message may name a missing, unknown or duplicated
/// field when the name is a plain identifier; it never echoes a value the client sent.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        let field_problem = ["missing field", "unknown field", "duplicate field"]
            .iter()
            .find(|p| text.starts_with(*p));
        // serde writes the field between backticks: "unknown field `plan`, expected ...".
        let field = text.split('`').nth(1).filter(|f| {
            (1..=32).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        });
        let message = if let Some(problem) = field_problem {
            match field {
                Some(f) => format!("Invalid request body: {problem} `{f}`."),
                None => format!("Invalid request body: {problem}."),
            }
        } else if e.is_syntax() || e.is_eof() {
            "The request body is not valid JSON.".to_string()
        } else {
            "The request body has a value of the wrong type.".to_string()
        };
        Error::InvalidRequest(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        email: Option<String>,
        n: Option<u32>,
    }

    fn msg(bytes: &[u8]) -> String {
        match parse_json::<T>(bytes) {
            Err(Error::InvalidRequest(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_every_malformed_body_without_echoing_it() {
        for bad in [
            &b"{"[..],
            b"",
            b"{\"email\": \"a\"}xyz",
            b"{\"email\": \"a\"}{}",
            b"\xef\xbb\xbf{}",
            b"{\"email\": \"\xff\"}",
            b"{\"email\": 123}",
            b"{\"n\": 1e1000000}",
            b"{\"n\": 123456789012345678901234567890}",
            b"{\"n\": -0}",
            b"[]",
        ] {
            let m = msg(bad);
            assert!(!m.contains("123") && !m.contains("xyz"), "{m}");
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        msg(deep.as_bytes());
    }

    #[test]
    fn names_unknown_and_duplicate_fields() {
        assert_eq!(
            msg(br#"{"plan":"pro"}"#),
            "Invalid request body: unknown field `plan`."
        );
        assert!(msg(br#"{"email":"a","email":"b"}"#).contains("duplicate field `email`"));
    }

    #[test]
    fn never_echoes_a_client_chosen_field_name() {
        for name in [
            "<script>alert(1)</script>",
            "Password123",
            &"x".repeat(1000),
        ] {
            let body = format!("{{{:?}: 1}}", name);
            let m = msg(body.as_bytes());
            assert_eq!(m, "Invalid request body: unknown field.", "{name}");
        }
    }
}

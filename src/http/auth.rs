//! Reading the caller's credential from the request head. Never reads the body.

use hyper::header::{self, HeaderMap};

use crate::error::Error;

/// The bearer token of `Authorization: Bearer <token>`. Exactly one Authorization header, the
/// Bearer scheme (any case), one token of visible ASCII; anything else is 401. Tokens in the
/// query string are never looked at.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Error> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Error::Unauthorized);
    };
    let value = value.to_str().map_err(|_| Error::Unauthorized)?;
    let (scheme, token) = value.split_once(' ').ok_or(Error::Unauthorized)?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Error::Unauthorized);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn accepts_one_bearer_token() {
        assert_eq!(
            bearer(&headers(&["Bearer abc.def.ghi"])).ok(),
            Some("abc.def.ghi")
        );
        assert_eq!(bearer(&headers(&["bearer abc"])).ok(), Some("abc"));
    }

    #[test]
    fn refuses_everything_else() {
        for h in [
            headers(&[]),
            headers(&["Basic dXNlcjpwYXNz"]),
            headers(&["Bearer"]),
            headers(&["Bearer "]),
            headers(&["Bearer a b"]),
            headers(&["Bearer a", "Bearer b"]),
            headers(&["Token abc"]),
        ] {
            assert!(bearer(&h).is_err(), "{h:?}");
        }
    }
}

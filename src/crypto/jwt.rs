//! Access tokens: compact JWS signed with Ed25519 (`alg: EdDSA`), and their strict verification.
//!
//! Verification never lets the token choose how it is checked: the algorithm must be exactly
//! `EdDSA`, the `kid` must name one of our keys, the header may carry nothing else (so `jwk`,
//! `jku`, `x5u` and `crit` are refused), every claim must be present with its type, `iss` must be
//! ours and `exp` in the future with no leeway (we are the issuer).

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signature, Signer};
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

use super::keys::{KeyPair, Keyring};

/// Longest token we will look at; ours are ~400 bytes.
const MAX_TOKEN_LEN: usize = 4096;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Issuer: `tokens.issuer`.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// Issued at.
    pub iat: UnixTime,
    /// Expires at.
    pub exp: UnixTime,
    /// Unique token id.
    pub jti: String,
    /// The session this token belongs to.
    pub sid: String,
    /// When the user last proved their password in this session.
    pub auth_time: UnixTime,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    kid: String,
}

/// Why a token was refused. Callers map every variant to the same 401; the detail is for logs
/// and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url segments of sane size.
    Malformed,
    /// Header or claims are not the JSON we issue.
    BadJson,
    /// `alg` is not `EdDSA` or `typ` is not `JWT`.
    Algorithm,
    /// `kid` is not one of our keys.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// `iss` is not ours.
    Issuer,
    /// `exp` has passed.
    Expired,
}

/// Sign `claims` with `key` into a compact JWS.
pub fn sign(claims: &Claims, key: &KeyPair) -> String {
    let header = Header {
        alg: "EdDSA".into(),
        typ: Some("JWT".into()),
        kid: key.kid().to_string(),
    };
    let mut out = String::with_capacity(512);
    out.push_str(&b64_json(&header));
    out.push('.');
    out.push_str(&b64_json(claims));
    let sig = sign_input(key, &out);
    out.push('.');
    out.push_str(&sig);
    out
}

/// The base64url Ed25519 signature of a JWS signing input.
pub fn sign_input(key: &KeyPair, input: &str) -> String {
    BASE64URL_NOPAD.encode(&key.signing_key().sign(input.as_bytes()).to_bytes())
}

fn b64_json<T: Serialize>(v: &T) -> String {
    // Serialising our own plain structs cannot fail.
    let json = serde_json::to_vec(v).unwrap_or_default();
    BASE64URL_NOPAD.encode(&json)
}

/// Verify a token against our keys, issuer and clock; returns its claims.
pub fn verify(
    token: &str,
    keys: &Keyring,
    issuer: &str,
    now: UnixTime,
) -> Result<Claims, JwtError> {
    verify_with_kid(token, keys, issuer, now).map(|(claims, _)| claims)
}

/// `verify`, also returning the `kid` of the key that signed it, so that a cache of verified
/// tokens can drop them when that key stops verifying.
pub fn verify_with_kid(
    token: &str,
    keys: &Keyring,
    issuer: &str,
    now: UnixTime,
) -> Result<(Claims, String), JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let decode = |s: &str| {
        BASE64URL_NOPAD
            .decode(s.as_bytes())
            .map_err(|_| JwtError::Malformed)
    };
    let header: Header = serde_json::from_slice(&decode(h64)?).map_err(|_| JwtError::BadJson)?;
    if header.alg != "EdDSA" || header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(JwtError::Algorithm);
    }
    let key = keys
        .verifying_key(&header.kid, now)
        .ok_or(JwtError::UnknownKey)?;
    let sig_bytes: [u8; 64] = decode(s64)?.try_into().map_err(|_| JwtError::Signature)?;
    let signing_input = &token[..h64.len() + 1 + c64.len()];
    key.verify_strict(signing_input.as_bytes(), &Signature::from_bytes(&sig_bytes))
        .map_err(|_| JwtError::Signature)?;
    let claims: Claims = serde_json::from_slice(&decode(c64)?).map_err(|_| JwtError::BadJson)?;
    if claims.iss != issuer {
        return Err(JwtError::Issuer);
    }
    if now >= claims.exp {
        return Err(JwtError::Expired);
    }
    // We issue with iat = now; one from the future means a forged or mis-clocked token.
    if claims.iat > now + 60 || claims.auth_time > claims.iat {
        return Err(JwtError::Expired);
    }
    Ok((claims, header.kid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_key() -> KeyPair {
        let seed: [u8; 32] = BASE64URL_NOPAD
            .decode(b"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .expect("b64")
            .try_into()
            .expect("32");
        KeyPair::from_seed(&seed)
    }

    fn claims(now: UnixTime) -> Claims {
        Claims {
            iss: "cloudheed-auth".into(),
            sub: "user-1".into(),
            iat: now,
            exp: now + 900,
            jti: "j".into(),
            sid: "ses-1".into(),
            auth_time: now,
        }
    }

    #[test]
    fn rfc8037_a4_signature_vector() {
        let sig = sign_input(
            &rfc_key(),
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc",
        );
        assert_eq!(
            sig,
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn round_trip_and_expiry_without_leeway() {
        let key = KeyPair::generate();
        let ring = Keyring::new(vec![(key.clone(), None)], 900).expect("ring");
        let t = sign(&claims(1000), &key);
        assert_eq!(verify(&t, &ring, "cloudheed-auth", 1000), Ok(claims(1000)));
        assert_eq!(
            verify(&t, &ring, "cloudheed-auth", 1899).map(|c| c.sub),
            Ok("user-1".into())
        );
        assert_eq!(
            verify(&t, &ring, "cloudheed-auth", 1900),
            Err(JwtError::Expired)
        );
        assert_eq!(
            verify(&t, &ring, "someone-else", 1000),
            Err(JwtError::Issuer)
        );
    }

    #[test]
    fn header_is_eddsa_jwt_with_kid() {
        let key = KeyPair::generate();
        let t = sign(&claims(1), &key);
        let h = BASE64URL_NOPAD
            .decode(t.split('.').next().expect("header").as_bytes())
            .expect("b64");
        let v: serde_json::Value = serde_json::from_slice(&h).expect("json");
        assert_eq!(v["alg"], "EdDSA");
        assert_eq!(v["typ"], "JWT");
        assert_eq!(v["kid"], key.kid());
    }

    #[test]
    fn refuses_forgeries() {
        let key = KeyPair::generate();
        let ring = Keyring::new(vec![(key.clone(), None)], 900).expect("ring");
        let good = sign(&claims(1000), &key);
        let parts: Vec<&str> = good.split('.').collect();
        let enc = |s: &str| BASE64URL_NOPAD.encode(s.as_bytes());
        let body = parts[1];
        let kid = key.kid();
        let v = |t: &str| verify(t, &ring, "cloudheed-auth", 1000);

        for alg in ["none", "None", "NONE", "HS256", "RS256", "ES256", "Ed25519"] {
            let h = enc(&format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#));
            assert_eq!(
                v(&format!("{h}.{body}.")),
                Err(JwtError::Algorithm),
                "{alg}"
            );
            assert_eq!(
                v(&format!("{h}.{body}.{}", parts[2])),
                Err(JwtError::Algorithm),
                "{alg}"
            );
        }
        // keycloak's strings: null alg, no alg, empty header.
        for t in [
            "eyJhbGciOm51bGx9.eyJzdWIiOiJ0ZXN0In0.ZmFrZQ",
            "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ0ZXN0In0.ZmFrZQ",
            "e30.eyJzdWIiOiJ0ZXN0In0.ZmFrZQ",
        ] {
            assert_eq!(v(t), Err(JwtError::BadJson), "{t}");
        }
        // A header member we do not issue (crit, jwk, jku) is refused even with a good signature.
        for extra in [
            r#""crit":["exp"]"#,
            r#""jku":"https://evil.example/jwks""#,
            r#""jwk":{}"#,
        ] {
            let h = enc(&format!(
                r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}",{extra}}}"#
            ));
            let input = format!("{h}.{body}");
            let t = format!("{input}.{}", sign_input(&key, &input));
            assert_eq!(v(&t), Err(JwtError::BadJson), "{extra}");
        }
        // Another key, same kid or unknown kid.
        let other = KeyPair::generate();
        let forged_same_kid = {
            let h = enc(&format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#));
            let input = format!("{h}.{body}");
            format!("{input}.{}", sign_input(&other, &input))
        };
        assert_eq!(v(&forged_same_kid), Err(JwtError::Signature));
        assert_eq!(v(&sign(&claims(1000), &other)), Err(JwtError::UnknownKey));
        // Payload changed, signature kept.
        let mut c = claims(1000);
        c.sub = "user-2".into();
        let tampered = format!("{}.{}.{}", parts[0], b64_json(&c), parts[2]);
        assert_eq!(v(&tampered), Err(JwtError::Signature));
        // Shape problems.
        for t in [
            format!("{}.{}.", parts[0], parts[1]),
            format!("{}.{}", parts[0], parts[1]),
            format!("{good}.x"),
            format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                &parts[2][..parts[2].len() - 1]
            ),
            "a".repeat(5000),
            String::new(),
        ] {
            assert!(v(&t).is_err(), "{t}");
        }
        assert!(v(&good).is_ok());
    }

    #[test]
    fn refuses_tokens_from_the_future() {
        let key = KeyPair::generate();
        let ring = Keyring::new(vec![(key.clone(), None)], 900).expect("ring");
        let mut c = claims(1000);
        c.exp = -1;
        assert_eq!(
            verify(&sign(&c, &key), &ring, "cloudheed-auth", 1000),
            Err(JwtError::Expired),
            "negative exp"
        );
        let mut c = claims(1000);
        c.iat = 5000;
        c.exp = 6000;
        assert_eq!(
            verify(&sign(&c, &key), &ring, "cloudheed-auth", 1000),
            Err(JwtError::Expired)
        );
        let mut c = claims(1000);
        c.auth_time = 1001;
        assert_eq!(
            verify(&sign(&c, &key), &ring, "cloudheed-auth", 1000),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn refuses_claims_we_do_not_issue() {
        let key = KeyPair::generate();
        let ring = Keyring::new(vec![(key.clone(), None)], 900).expect("ring");
        let h = BASE64URL_NOPAD
            .encode(format!(r#"{{"alg":"EdDSA","kid":"{}"}}"#, key.kid()).as_bytes());
        for payload in [
            r#"{"iss":"cloudheed-auth","sub":"u","iat":1,"jti":"j","sid":"s","auth_time":1}"#,
            r#"{"iss":"cloudheed-auth","sub":"u","iat":1,"exp":"9999999999","jti":"j","sid":"s","auth_time":1}"#,
            r#"{"iss":"cloudheed-auth","sub":"u","iat":1,"exp":1e309,"jti":"j","sid":"s","auth_time":1}"#,
            r#"{"iss":"cloudheed-auth","sub":"u","sub":"v","iat":1,"exp":9999999999,"jti":"j","sid":"s","auth_time":1}"#,
            r#"{"iss":"cloudheed-auth","sub":"u","iat":1,"exp":9999999999,"nbf":9999999999,"jti":"j","sid":"s","auth_time":1}"#,
            r#"{"iss":"cloudheed-auth","sub":"u","iat":1,"exp":9999999999,"aud":"other","jti":"j","sid":"s","auth_time":1}"#,
        ] {
            let input = format!("{h}.{}", BASE64URL_NOPAD.encode(payload.as_bytes()));
            let t = format!("{input}.{}", sign_input(&key, &input));
            assert_eq!(
                verify(&t, &ring, "cloudheed-auth", 10),
                Err(JwtError::BadJson),
                "{payload}"
            );
        }
    }
}

//! Ed25519 signing keys: the keyring tokens are signed and verified with, their RFC 7638
//! thumbprints (`kid`) and their public JWKs (RFC 8037).

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Serialize;
use zeroize::Zeroizing;

use super::random;

/// One signing key. `Debug` shows only the kid.
#[derive(Clone)]
pub struct KeyPair {
    kid: String,
    signing: SigningKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A public key as a JWK (RFC 8037 §2): never carries `d`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PublicJwk {
    /// Always "OKP".
    pub kty: &'static str,
    /// Always "Ed25519".
    pub crv: &'static str,
    /// The 32-byte public key, base64url.
    pub x: String,
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// Always "sig".
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// Always "EdDSA".
    pub alg: &'static str,
}

/// The keys this server signs with (the newest) and accepts: every key not retired, and a
/// retired one until `keep_for` seconds after its retirement (long enough for every token it
/// signed to expire), after which it also leaves the JWKS.
#[derive(Debug, Clone)]
pub struct Keyring {
    active: KeyPair,
    keys: Vec<RingKey>,
    keep_for: i64,
}

#[derive(Debug, Clone)]
struct RingKey {
    kid: String,
    verifying: VerifyingKey,
    jwk: PublicJwk,
    retired_at: Option<i64>,
}

// === impl KeyPair ===

impl KeyPair {
    /// A fresh random key.
    pub fn generate() -> Self {
        let seed = Zeroizing::new(random::bytes::<32>());
        Self::from_seed(&seed)
    }

    /// The key with this 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let kid = thumbprint(&signing.verifying_key());
        Self { kid, signing }
    }

    /// The secret seed, for the store to persist.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing half.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The public JWK.
    pub fn public_jwk(&self) -> PublicJwk {
        PublicJwk {
            kty: "OKP",
            crv: "Ed25519",
            x: BASE64URL_NOPAD.encode(self.signing.verifying_key().as_bytes()),
            kid: self.kid.clone(),
            use_: "sig",
            alg: "EdDSA",
        }
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the required members in
/// lexicographic order with no whitespace, base64url.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        BASE64URL_NOPAD.encode(key.as_bytes())
    );
    BASE64URL_NOPAD.encode(&random::sha256(canonical.as_bytes()))
}

/// Whether `signature` (base64url) is `public_x`'s (base64url, 32 bytes) Ed25519 signature of
/// `message`; the kid, when given, must be that key's thumbprint. For signed audit checkpoints,
/// which may outlive the key in the keyring.
pub fn verify_detached(public_x: &str, kid: Option<&str>, message: &[u8], signature: &str) -> bool {
    use ed25519_dalek::Verifier;
    let key = BASE64URL_NOPAD
        .decode(public_x.as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok());
    let sig = BASE64URL_NOPAD
        .decode(signature.as_bytes())
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| ed25519_dalek::Signature::from_bytes(&b));
    match (key, sig) {
        (Some(key), Some(sig)) => {
            kid.is_none_or(|k| k == thumbprint(&key)) && key.verify(message, &sig).is_ok()
        }
        _ => false,
    }
}

// === impl Keyring ===

impl Keyring {
    /// A keyring from the stored keys (oldest first) with their retirement times; the newest key
    /// that is not retired signs. `None` without such a key.
    pub fn new(keys: Vec<(KeyPair, Option<i64>)>, keep_for: i64) -> Option<Self> {
        let active = keys
            .iter()
            .rev()
            .find(|(_, retired)| retired.is_none())?
            .0
            .clone();
        let keys = keys
            .iter()
            .rev()
            .map(|(k, retired_at)| RingKey {
                kid: k.kid.clone(),
                verifying: k.signing.verifying_key(),
                jwk: k.public_jwk(),
                retired_at: *retired_at,
            })
            .collect();
        Some(Self {
            active,
            keys,
            keep_for,
        })
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &KeyPair {
        &self.active
    }

    fn usable(&self, k: &RingKey, now: i64) -> bool {
        k.retired_at
            .is_none_or(|r| now < r.saturating_add(self.keep_for))
    }

    /// The verifying key for a `kid`, if it is one of ours and still accepted at `now`.
    pub fn verifying_key(&self, kid: &str, now: i64) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid && self.usable(k, now))
            .map(|k| &k.verifying)
    }

    /// Every public key still accepted at `now`, the signing key first: the JWKS.
    pub fn jwks(&self, now: i64) -> Vec<PublicJwk> {
        let mut keys: Vec<&RingKey> = self.keys.iter().filter(|k| self.usable(k, now)).collect();
        keys.sort_by_key(|k| k.kid != self.active.kid);
        keys.into_iter().map(|k| k.jwk.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8037 Appendix A.1-A.3.
    const D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

    fn rfc_key() -> KeyPair {
        let seed: [u8; 32] = BASE64URL_NOPAD
            .decode(D.as_bytes())
            .expect("b64")
            .try_into()
            .expect("32 bytes");
        KeyPair::from_seed(&seed)
    }

    #[test]
    fn detached_signatures_verify_only_with_their_key_and_message() {
        let pair = KeyPair::generate();
        let jwk = pair.public_jwk();
        let sig = crate::crypto::jwt::sign_input(&pair, "head 42");
        assert!(verify_detached(&jwk.x, Some(&jwk.kid), b"head 42", &sig));
        assert!(!verify_detached(&jwk.x, Some(&jwk.kid), b"head 43", &sig));
        assert!(!verify_detached(
            &jwk.x,
            Some("another-kid"),
            b"head 42",
            &sig
        ));
        let other = KeyPair::generate().public_jwk();
        assert!(!verify_detached(&other.x, None, b"head 42", &sig));
        assert!(!verify_detached("junk", None, b"head 42", "junk"));
    }

    #[test]
    fn rfc8037_public_key_and_rfc7638_thumbprint() {
        let k = rfc_key();
        let jwk = k.public_jwk();
        assert_eq!(jwk.x, X);
        assert_eq!(jwk.kid, THUMBPRINT);
        assert_eq!(k.kid(), THUMBPRINT);
        let json = serde_json::to_value(&jwk).expect("json");
        assert!(json.get("d").is_none());
        assert_eq!(json["kty"], "OKP");
        assert_eq!(json["crv"], "Ed25519");
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "EdDSA");
    }

    #[test]
    fn keyring_signs_with_the_newest_and_keeps_retired_keys_for_a_while() {
        let old = KeyPair::generate();
        let new = KeyPair::generate();
        let ring =
            Keyring::new(vec![(old.clone(), Some(100)), (new.clone(), None)], 900).expect("active");
        assert_eq!(ring.active().kid(), new.kid());
        assert!(
            ring.verifying_key(old.kid(), 999).is_some(),
            "still accepted"
        );
        assert!(
            ring.verifying_key(old.kid(), 1000).is_none(),
            "dropped after keep_for"
        );
        assert!(ring.verifying_key("nope", 0).is_none());
        let jwks = ring.jwks(500);
        assert_eq!((jwks.len(), jwks[0].kid.as_str()), (2, new.kid()));
        assert_eq!(ring.jwks(1000).len(), 1);
        assert!(Keyring::new(vec![], 900).is_none());
        assert!(
            Keyring::new(vec![(old, Some(1))], 900).is_none(),
            "no key may sign"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let k = rfc_key();
        assert!(!format!("{k:?}").contains(D));
    }
}

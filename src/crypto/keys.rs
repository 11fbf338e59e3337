//! Ed25519 signing keys: the keyring tokens are signed and verified with, their RFC 7638
//! thumbprints (`kid`) and their public JWKs (RFC 8037).

use std::collections::HashMap;

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

/// The keys this server signs with (the newest) and accepts (all of them).
#[derive(Debug, Clone)]
pub struct Keyring {
    active: KeyPair,
    verifying: HashMap<String, VerifyingKey>,
    jwks: Vec<PublicJwk>,
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

// === impl Keyring ===

impl Keyring {
    /// A keyring from every stored key, newest last; the newest signs.
    /// Returns `None` for an empty list: a server without a key cannot issue tokens.
    pub fn new(mut keys: Vec<KeyPair>) -> Option<Self> {
        let active = keys.pop()?;
        keys.push(active.clone());
        let verifying = keys
            .iter()
            .map(|k| (k.kid.clone(), k.signing.verifying_key()))
            .collect();
        let jwks = keys.iter().rev().map(KeyPair::public_jwk).collect();
        Some(Self {
            active,
            verifying,
            jwks,
        })
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &KeyPair {
        &self.active
    }

    /// The verifying key for a `kid`, if it is one of ours.
    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    /// Every public key, newest first, as published at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &[PublicJwk] {
        &self.jwks
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
    fn keyring_signs_with_the_newest_and_knows_all() {
        let old = KeyPair::generate();
        let new = KeyPair::generate();
        let ring = Keyring::new(vec![old.clone(), new.clone()]).expect("non-empty");
        assert_eq!(ring.active().kid(), new.kid());
        assert!(ring.verifying_key(old.kid()).is_some());
        assert!(ring.verifying_key("nope").is_none());
        assert_eq!(ring.jwks()[0].kid, new.kid());
        assert_eq!(ring.jwks().len(), 2);
        assert!(Keyring::new(vec![]).is_none());
    }

    #[test]
    fn debug_hides_the_secret() {
        let k = rfc_key();
        assert!(!format!("{k:?}").contains(D));
    }
}

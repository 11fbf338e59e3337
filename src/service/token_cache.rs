//! Verified access tokens, so that a token's Ed25519 signature (~50 µs) is checked once rather
//! than on every request. Keyed by the SHA-256 of the exact token bytes — never a prefix or the
//! `jti`, which a forger controls. An entry is used only while its token has not expired and the
//! key that signed it still verifies (a retired key that is dropped takes its tokens with it);
//! it is bounded by `cache.tokens` entries (least recently used evicted first; 0 turns it off).
//! Revocation is not the cache's business: the session and the user are read on every request.

use std::sync::Arc;

use crate::clock::UnixTime;
use crate::crypto::jwt::{self, Claims, JwtError};
use crate::crypto::keys::Keyring;
use crate::crypto::random;

use crate::bounded::ShardedLru;

/// A token that passed every check, and the key that signed it.
#[derive(Debug)]
struct Verified {
    claims: Arc<Claims>,
    kid: String,
}

/// The verified-token cache.
#[derive(Debug)]
pub struct TokenCache {
    entries: Option<ShardedLru<[u8; 32], Verified>>,
}

impl TokenCache {
    /// A cache of at most about `capacity` tokens; 0 verifies every time.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: (capacity > 0).then(|| ShardedLru::new(capacity)),
        }
    }

    /// The claims of `token`, from the cache when this exact token was verified before, still
    /// lives and its key still verifies; otherwise verified now and remembered.
    pub fn verify(
        &self,
        token: &str,
        keys: &Keyring,
        issuer: &str,
        now: UnixTime,
    ) -> Result<Arc<Claims>, JwtError> {
        let Some(entries) = &self.entries else {
            return jwt::verify(token, keys, issuer, now).map(Arc::new);
        };
        let id = random::sha256(token.as_bytes());
        let cached = entries.with_existing(&id, |v| {
            (now < v.claims.exp && keys.verifying_key(&v.kid, now).is_some())
                .then(|| v.claims.clone())
        });
        match cached {
            Some(Some(claims)) => return Ok(claims),
            // Expired, or its key is gone: forget it, and let the full check say why.
            Some(None) => {
                entries.remove(&id);
            }
            None => {}
        }
        let (claims, kid) = jwt::verify_with_kid(token, keys, issuer, now)?;
        let claims = Arc::new(claims);
        entries.put(
            id,
            Verified {
                claims: claims.clone(),
                kid,
            },
        );
        Ok(claims)
    }

    /// Tokens held now.
    pub fn held(&self) -> usize {
        self.entries.as_ref().map_or(0, ShardedLru::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::KeyPair;

    fn token(key: &KeyPair, sid: &str, exp: UnixTime) -> String {
        jwt::sign(
            &Claims {
                iss: "iss".into(),
                sub: "user-1".into(),
                iat: 100,
                exp,
                jti: sid.into(),
                sid: sid.into(),
                auth_time: 100,
            },
            key,
        )
    }

    #[test]
    fn a_token_is_verified_once_and_dropped_with_its_key_or_its_expiry() {
        let old = KeyPair::generate();
        let ring = Keyring::new(vec![(KeyPair::from_seed(&old.seed()), None)], 60).expect("ring");
        let cache = TokenCache::new(100);
        let t = token(&old, "s1", 1000);
        assert_eq!(cache.verify(&t, &ring, "iss", 200).expect("ok").sid, "s1");
        assert_eq!(cache.held(), 1);
        assert!(
            cache.verify(&t, &ring, "iss", 300).is_ok(),
            "from the cache"
        );
        assert!(cache.verify(&t, &ring, "iss", 1000).is_err(), "expired");
        assert_eq!(cache.held(), 0, "and forgotten");
        let t2 = token(&old, "s2", 5000);
        assert!(cache.verify(&t2, &ring, "iss", 200).is_ok());
        // The old key is retired at 300 and dropped 60 s later.
        let new = KeyPair::generate();
        let rotated = Keyring::new(
            vec![(KeyPair::from_seed(&old.seed()), Some(300)), (new, None)],
            60,
        )
        .expect("ring");
        assert!(
            cache.verify(&t2, &rotated, "iss", 350).is_ok(),
            "still verifies"
        );
        assert!(
            cache.verify(&t2, &rotated, "iss", 361).is_err(),
            "its key is dropped: the cached token stops verifying"
        );
        assert!(cache.verify("junk", &ring, "iss", 200).is_err());
        assert_eq!(cache.held(), 0, "refused tokens are not kept");
    }

    #[test]
    fn the_cache_is_bounded_and_can_be_off() {
        let key = KeyPair::generate();
        let ring = Keyring::new(vec![(KeyPair::from_seed(&key.seed()), None)], 60).expect("ring");
        let cache = TokenCache::new(50);
        for i in 0..500 {
            cache
                .verify(&token(&key, &format!("s{i}"), 1000), &ring, "iss", 200)
                .expect("ok");
        }
        assert!(cache.held() <= 64, "{}", cache.held());
        let off = TokenCache::new(0);
        assert!(off
            .verify(&token(&key, "s", 1000), &ring, "iss", 200)
            .is_ok());
        assert_eq!(off.held(), 0);
    }
}

//! Randomness from the OS, and the few derived forms the server hands out: ids and opaque tokens.

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Fill `buf` from the OS CSPRNG. A machine that cannot produce randomness cannot run an auth
/// server safely, so this is the one place that aborts instead of returning an error.
pub fn fill(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        panic!("the operating system's random number generator failed: {e}");
    }
}

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill(&mut b);
    b
}

/// `prefix` + 26 lowercase base32 characters (128 random bits): user, session and request ids.
pub fn id(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 26);
    s.push_str(prefix);
    s.push_str(&BASE32_NOPAD.encode(&bytes::<16>()).to_ascii_lowercase());
    s
}

/// An opaque bearer secret: 256 random bits, base64url without padding (43 characters).
pub fn token() -> String {
    BASE64URL_NOPAD.encode(&bytes::<32>())
}

/// SHA-256, the at-rest form of high-entropy secrets (refresh tokens, API keys).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Equality that takes the same time wherever the inputs differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_and_tokens_are_unique_and_long_enough() {
        let tokens: HashSet<String> = (0..1000).map(|_| token()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(tokens.iter().all(|t| t.len() == 43));
        let id = id("user-");
        assert!(id.starts_with("user-") && id.len() == 31, "{id}");
    }

    #[test]
    fn sha256_matches_the_fips_vector() {
        let h = sha256(b"abc");
        assert_eq!(
            data_encoding::HEXLOWER.encode(&h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(ct_eq(&h, &sha256(b"abc")));
        assert!(!ct_eq(&h, &sha256(b"abd")));
    }
}

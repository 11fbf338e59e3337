//! Sealing a small secret under a key derived from another secret (ChaCha20-Poly1305): the
//! refresh grace successor kept in a shared database, which only the holder of the token it
//! replaced can open.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use super::random;

const NONCE: usize = 12;

fn cipher(key_material: &[u8], purpose: &str) -> ChaCha20Poly1305 {
    let mut input = Vec::with_capacity(purpose.len() + 1 + key_material.len());
    input.extend_from_slice(purpose.as_bytes());
    input.push(0);
    input.extend_from_slice(key_material);
    let key = random::sha256(&input);
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

/// `plaintext` sealed for whoever knows `key_material`: a random nonce, then the ciphertext
/// with its tag. `purpose` separates the keys of different uses of one secret.
pub fn seal(key_material: &[u8], purpose: &str, plaintext: &[u8]) -> Vec<u8> {
    let nonce = random::bytes::<NONCE>();
    let mut out = nonce.to_vec();
    // Encrypting into a Vec cannot fail for inputs this small.
    let sealed = cipher(key_material, purpose)
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .unwrap_or_default();
    out.extend_from_slice(&sealed);
    out
}

/// What `seal` sealed, if `key_material` and `purpose` are the ones it used and nothing was
/// changed.
pub fn open(key_material: &[u8], purpose: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE);
    cipher(key_material, purpose)
        .decrypt(Nonce::from_slice(nonce), ct)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_secret_and_purpose_open_what_was_sealed() {
        let sealed = seal(b"token-1", "grace", b"successor");
        assert_eq!(
            open(b"token-1", "grace", &sealed).as_deref(),
            Some(&b"successor"[..])
        );
        assert_eq!(open(b"token-2", "grace", &sealed), None);
        assert_eq!(open(b"token-1", "other", &sealed), None);
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert_eq!(open(b"token-1", "grace", &changed), None);
        assert_eq!(open(b"token-1", "grace", &sealed[..10]), None);
        assert_ne!(
            seal(b"token-1", "grace", b"x"),
            seal(b"token-1", "grace", b"x"),
            "fresh nonce"
        );
    }
}

//! The API-key format: `prefix` + 32 random base62 characters + a 6-character base62 checksum.
//!
//! The checksum (CRC32 over prefix and body, base62, as GitHub's tokens carry) lets a mistyped or
//! invented key be refused without touching the store or hashing it, and together with the
//! fixed prefix lets secret scanners recognise our keys with few false positives. It is not a
//! security measure: the 190 random bits are.

use super::random;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters per key: 32 * log2(62) ≈ 190 bits.
pub const BODY_LEN: usize = 32;
/// Checksum characters: base62 of a u32 fits in 6.
pub const CHECKSUM_LEN: usize = 6;
/// Characters shown in the `prefix` field: at least 11, and at least 4 random ones.
fn shown_len(prefix: &str) -> usize {
    (prefix.len() + 4).max(11)
}

/// A freshly generated key: the secret to show once, and what is kept.
#[derive(Debug)]
pub struct NewKey {
    /// The full key, shown to the user once.
    pub secret: crate::secret::Secret,
    /// SHA-256 of the full key: the only form stored.
    pub hash: [u8; 32],
    /// The display prefix: configured prefix + the first few random characters.
    pub shown: String,
}

/// Generate a key with `prefix`.
pub fn generate(prefix: &str) -> NewKey {
    let mut body = String::with_capacity(BODY_LEN);
    while body.len() < BODY_LEN {
        for b in random::bytes::<48>() {
            // Rejection sampling keeps every character equally likely: 248 = 4 * 62.
            if b < 248 && body.len() < BODY_LEN {
                body.push(BASE62[usize::from(b % 62)] as char);
            }
        }
    }
    let mut key = String::with_capacity(prefix.len() + BODY_LEN + CHECKSUM_LEN);
    key.push_str(prefix);
    key.push_str(&body);
    let sum = checksum(&key);
    key.extend(sum.iter().map(|&b| b as char));
    let shown = key[..shown_len(prefix)].to_string();
    let hash = random::sha256(key.as_bytes());
    NewKey {
        secret: crate::secret::Secret::new(key),
        hash,
        shown,
    }
}

/// Whether `key` has our shape and a correct checksum. Cheap; touches no store.
pub fn well_formed(key: &str, prefix: &str) -> bool {
    let Some(rest) = key.strip_prefix(prefix) else {
        return false;
    };
    if rest.len() != BODY_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (signed, sum) = key.split_at(key.len() - CHECKSUM_LEN);
    checksum(signed) == sum.as_bytes()
}

fn checksum(signed: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(signed.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = generate("ch_live_");
        let s = k.secret.expose();
        assert!(s.starts_with("ch_live_"));
        assert_eq!(s.len(), 8 + BODY_LEN + CHECKSUM_LEN);
        assert!(s[8..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(k.shown, &s[..12]);
        assert_eq!(
            generate("ch_").shown.len(),
            11,
            "never fewer than 11 characters shown"
        );
        assert_eq!(k.hash, random::sha256(s.as_bytes()));
        assert!(well_formed(s, "ch_live_"));
    }

    #[test]
    fn mistyped_and_invented_keys_fail_the_checksum() {
        let k = generate("ch_live_");
        let s = k.secret.expose();
        let mut typo = s.as_bytes().to_vec();
        typo[12] = if typo[12] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).expect("ascii");
        for bad in [
            typo.as_str(),
            &s[..s.len() - 1],
            &format!("{s}x"),
            &format!("ch_test_{}", &s[8..]),
            &format!("ch_live_{}", "A".repeat(38)),
            "",
            "ch_live_",
        ] {
            assert!(!well_formed(bad, "ch_live_"), "{bad}");
        }
    }

    #[test]
    fn keys_are_unique() {
        let keys: std::collections::HashSet<String> = (0..500)
            .map(|_| generate("p_").secret.expose().to_string())
            .collect();
        assert_eq!(keys.len(), 500);
    }
}

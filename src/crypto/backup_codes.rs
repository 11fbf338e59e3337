//! Backup codes: ten single-use codes shown once when two-factor authentication is enabled.
//!
//! Each is 10 characters from an alphabet of 27 without look-alikes: 47 bits. NIST SP
//! 800-63B §5.1.2.2 asks that lookup secrets under 112 bits be stored salted and through a
//! password-hashing function, so each is kept as scrypt(code, per-user salt). One salt per user
//! means checking a presented code costs one hash, compared against all ten in constant time.

use scrypt::Params;

use super::random;
use crate::secret::Secret;

/// Codes per user.
pub const COUNT: usize = 10;
const LEN: usize = 10;
/// Digits and capitals without the look-alike pairs 0/O, 1/I/L, 2/Z, 5/S, 8/B, U/V.
const ALPHABET: &[u8; 27] = b"234679ACDEFGHJKMNPQRTUWXY38";

/// Ten fresh codes, formatted `XXXXX-XXXXX` for reading aloud and typing.
pub fn generate() -> Vec<Secret> {
    (0..COUNT)
        .map(|_| {
            let mut chars = String::with_capacity(LEN);
            while chars.len() < LEN {
                for b in random::bytes::<16>() {
                    // Rejection sampling keeps every character equally likely: 243 = 9 * 27.
                    if b < 243 && chars.len() < LEN {
                        chars.push(ALPHABET[usize::from(b % 27)] as char);
                    }
                }
            }
            Secret::new(format!("{}-{}", &chars[..5], &chars[5..]))
        })
        .collect()
}

/// The canonical form of a typed code: dash and spaces dropped, upper case. `None` if it
/// cannot be one of ours, so a TOTP code or junk never costs a hash.
pub fn normalize(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (s.len() == LEN && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

/// scrypt of a canonical code under the user's salt. Blocking: run it on the hashing pool.
pub fn digest(canonical: &str, salt: &[u8], params: &Params) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Output length 32 is always valid for scrypt.
    let _ = scrypt::scrypt(canonical.as_bytes(), salt, params, &mut out);
    out
}

/// Index of the unused stored digest equal to `digest`, checking all of them.
pub fn find(stored: &[([u8; 32], bool)], digest: &[u8; 32]) -> Option<usize> {
    let mut found = None;
    for (i, (d, used)) in stored.iter().enumerate() {
        if random::ct_eq(d, digest) && !used && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_unambiguous_characters() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        for c in &codes {
            let s = c.expose();
            assert_eq!(s.len(), 11);
            assert_eq!(&s[5..6], "-");
            assert!(
                !s.contains(['0', 'O', '1', 'I', 'L', 'Z', 'S', 'B', 'V', '5']),
                "{s}"
            );
            assert!(normalize(s).is_some());
        }
        let distinct: std::collections::HashSet<_> =
            codes.iter().map(|c| c.expose().to_string()).collect();
        assert_eq!(distinct.len(), COUNT);
    }

    #[test]
    fn typed_codes_are_normalised() {
        assert_eq!(normalize("acdef-ghjkm").as_deref(), Some("ACDEFGHJKM"));
        assert_eq!(normalize("ACDEF GHJKM").as_deref(), Some("ACDEFGHJKM"));
        for bad in [
            "123456",
            "ACDEF-GHJK",
            "ACDEF-GHJKMN",
            "ACDEF-GH0KM",
            "ACDEF-GHJKB",
            "ACDÉF-GHJKM",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn digests_are_salted_and_found_once() {
        let params = Params::new(10, 8, 1, 32).expect("params");
        let a = digest("ACDEFGHJKM", b"salt-one", &params);
        assert_ne!(a, digest("ACDEFGHJKM", b"salt-two", &params));
        let stored = vec![([0u8; 32], false), (a, false)];
        assert_eq!(find(&stored, &a), Some(1));
        assert_eq!(find(&[(a, true)], &a), None, "used codes are not found");
    }
}

//! A password as received: never printed, wiped from memory on drop, checked against the policy.
//!
//! Policy (NIST SP 800-63B §5.1.1.2): `min_length` to 128 Unicode code points, counted as code
//! points, never truncated or normalised, no composition rules, and refused when it is on a list
//! of very common passwords or is the account's own email.

use std::collections::HashSet;
use std::sync::OnceLock;

use zeroize::Zeroizing;

use super::types::FieldError;

/// The most code points a password may have; also bounds the work one hash can be asked to do.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The ~11,600 most common passwords of at least 8 characters, lowercased, from the frequency
/// list zxcvbn ships (MIT licence, © 2016 Joshua Holmer, after Dropbox's zxcvbn).
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// A password in memory. `Debug` shows nothing and the bytes are zeroed on drop.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

impl<'de> serde::Deserialize<'de> for Password {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Password::new)
    }
}

impl Password {
    /// Wrap a password exactly as received.
    pub fn new(raw: String) -> Self {
        Password(Zeroizing::new(raw))
    }

    /// The bytes to hash.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether a login may even try this password: too long ones are refused before any hashing.
    pub fn within_max_length(&self) -> bool {
        self.0.chars().count() <= MAX_PASSWORD_CHARS
    }

    /// Check a new password against the policy; `email` is the account's own address.
    pub fn check_new(&self, min_length: usize, email: Option<&str>) -> Result<(), FieldError> {
        let err = |code| FieldError {
            field: "password",
            code,
        };
        let n = self.0.chars().count();
        if n < min_length {
            return Err(err("too_short"));
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(err("too_long"));
        }
        if self.is_common(email) {
            return Err(err("password_too_common"));
        }
        Ok(())
    }

    fn is_common(&self, email: Option<&str>) -> bool {
        let lower = self.0.to_lowercase();
        let mut chars = lower.chars();
        let first = chars.next();
        if chars.all(|c| Some(c) == first) {
            return true;
        }
        if let Some(email) = email {
            let email = email.to_lowercase();
            let local = email.split('@').next().unwrap_or_default();
            if lower == email || lower == local {
                return true;
            }
        }
        // The product's name with a little decoration is the first guess of anyone attacking us.
        (lower.contains("cloudheed") && lower.chars().count() < 16)
            || common_set().contains(lower.as_str())
    }
}

fn common_set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON_PASSWORDS.lines().filter(|l| !l.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pw: &str) -> Result<(), &'static str> {
        Password::new(pw.into())
            .check_new(8, Some("alice.smith@example.com"))
            .map_err(|e| e.code)
    }

    #[test]
    fn length_is_counted_in_code_points() {
        assert_eq!(check("Tr0ub4d"), Err("too_short"));
        assert_eq!(check("😀😀😀😀😀😀😀"), Err("too_short"));
        assert_eq!(check("😀😁😂🤣😃😄😅😆"), Ok(()));
        assert_eq!(check(&"kq9".repeat(42)[..126]), Ok(()));
        assert_eq!(
            check(&format!("{}xy", "kq9".repeat(42))),
            Ok(()),
            "128 is allowed"
        );
        assert_eq!(check(&"kq9".repeat(43)), Err("too_long"), "129 is not");
    }

    #[test]
    fn common_and_contextual_passwords_are_refused() {
        for pw in [
            "password",
            "PASSWORD",
            "12345678",
            "aaaaaaaa",
            "1234abcd",
            "iloveyou",
            "alice.smith",
            "alice.smith@example.com",
            "cloudheed1",
        ] {
            assert_eq!(check(pw), Err("password_too_common"), "{pw}");
        }
        assert_eq!(check("correct horse battery staple"), Ok(()));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = Password::new("hunter2-very-secret".into());
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}

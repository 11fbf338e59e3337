//! Newtypes with one fallible `parse` each: an `Email` or a `DisplayName` that exists is valid.

use crate::error::FieldError;

/// A syntactically valid email address, trimmed. `key()` is its case-insensitive identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// A person's name: 1 to 200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

/// An optional company name: up to 200 characters after trimming; empty means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company(Option<String>);

const MAX_EMAIL: usize = 254;
const MAX_LOCAL: usize = 64;
const MAX_NAME: usize = 200;

fn err(field: &'static str, code: &'static str) -> FieldError {
    FieldError { field, code }
}

// === impl Email ===

impl Email {
    /// Trim and check the shape: `local@domain`, ASCII, a dotted domain of LDH labels, at most
    /// 254 characters. International addresses must use the punycode form of their domain.
    pub fn parse(raw: &str) -> Result<Email, FieldError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(err("email", "required"));
        }
        if s.chars().count() > MAX_EMAIL {
            return Err(err("email", "too_long"));
        }
        let bad = || err("email", "invalid_format");
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty() || local.len() > MAX_LOCAL || !local.bytes().all(is_local_byte) {
            return Err(bad());
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(bad());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(bad());
        }
        Ok(Email(s.to_string()))
    }

    /// The address as the user typed it (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity used for lookups and uniqueness: lowercased.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// RFC 5322 atext plus the dot; no quoted local parts, which no one types in a signup form.
fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b)
}

// === impl DisplayName ===

impl DisplayName {
    /// Trim and check length and characters.
    pub fn parse(raw: &str) -> Result<DisplayName, FieldError> {
        let s = raw.trim();
        let n = s.chars().count();
        if n == 0 {
            return Err(err("name", "required"));
        }
        if n > MAX_NAME {
            return Err(err("name", "too_long"));
        }
        if s.chars().any(char::is_control) {
            return Err(err("name", "invalid_format"));
        }
        Ok(DisplayName(s.to_string()))
    }

    /// The trimmed name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// === impl Company ===

impl Company {
    /// Trim; empty or absent is no company.
    pub fn parse(raw: Option<&str>) -> Result<Company, FieldError> {
        let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Company(None));
        };
        if s.chars().count() > MAX_NAME {
            return Err(err("company", "too_long"));
        }
        if s.chars().any(char::is_control) {
            return Err(err("company", "invalid_format"));
        }
        Ok(Company(Some(s.to_string())))
    }

    /// The company, if any.
    pub fn into_inner(self) -> Option<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_keyed_case_insensitively() {
        let e = Email::parse("  Alice@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "Alice@Example.COM");
        assert_eq!(e.key(), "alice@example.com");
    }

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "x_y-z@a-b.io",
            "o'neil@ex.ie",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let too_long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
        for bad in [
            "a",
            "a@",
            "@b.co",
            "a@@b.co",
            "a b@c.de",
            "a@b",
            "a@b..co",
            "a@-b.co",
            "a@b.co\r\nBcc:x@y.z",
            "a\u{0}@x.io",
            ".a@b.co",
            "a.@b.co",
            "a..b@c.de",
            "é@b.co",
            "a@bé.co",
            &long_local,
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Email::parse(&too_long).map(|_| ()),
            Err(err("email", "too_long"))
        );
        assert_eq!(
            Email::parse("  ").map(|_| ()),
            Err(err("email", "required"))
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Jo ").expect("ok").as_str(), "Jo");
        assert!(DisplayName::parse(&"é".repeat(200)).is_ok());
        assert_eq!(
            DisplayName::parse(&"é".repeat(201)),
            Err(err("name", "too_long"))
        );
        assert_eq!(DisplayName::parse("   "), Err(err("name", "required")));
        assert_eq!(
            DisplayName::parse("a\u{7}b"),
            Err(err("name", "invalid_format"))
        );
        assert!(DisplayName::parse("<script>alert(1)</script>").is_ok());
    }

    #[test]
    fn company_is_optional() {
        assert_eq!(Company::parse(None).expect("ok").into_inner(), None);
        assert_eq!(Company::parse(Some("  ")).expect("ok").into_inner(), None);
        assert_eq!(
            Company::parse(Some(" Acme "))
                .expect("ok")
                .into_inner()
                .as_deref(),
            Some("Acme")
        );
        assert!(Company::parse(Some(&"x".repeat(201))).is_err());
    }
}

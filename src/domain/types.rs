//! Newtypes with one fallible `parse` each: an `Email` or a `DisplayName` that exists is valid.

/// A field-level validation failure, reported in a 422's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The request field, as the client spelled it.
    pub field: &'static str,
    /// Why: `required`, `too_short`, `too_long`, `invalid_format`, `password_too_common`, ...
    pub code: &'static str,
}

/// A syntactically valid email address, trimmed. `key()` is its case-insensitive identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// A person's name: 1 to 200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

/// An optional company name: up to 200 characters after trimming; empty means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company(Option<String>);

/// The most characters an email address may have after trimming (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// The most bytes the part before the `@` may have (RFC 5321 §4.5.3.1.1).
pub const MAX_EMAIL_LOCAL_BYTES: usize = 64;
/// The most bytes one label of the domain may have (RFC 1035).
pub const MAX_DOMAIN_LABEL_BYTES: usize = 63;
/// What the part before the `@` may hold besides ASCII letters, digits and dots: RFC 5322 atext.
pub const EMAIL_LOCAL_SYMBOLS: &str = "!#$%&'*+-/=?^_`{|}~";
/// The most characters a person's or a company's name may have after trimming.
pub const MAX_NAME_CHARS: usize = 200;
/// The most characters an API key's name may have after trimming.
pub const MAX_KEY_NAME_CHARS: usize = 100;

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
        if s.chars().count() > MAX_EMAIL_CHARS {
            return Err(err("email", "too_long"));
        }
        let bad = || err("email", "invalid_format");
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > MAX_EMAIL_LOCAL_BYTES
            || !local.bytes().all(is_local_byte)
        {
            return Err(bad());
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(bad());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= MAX_DOMAIN_LABEL_BYTES
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
    b.is_ascii_alphanumeric() || b == b'.' || EMAIL_LOCAL_SYMBOLS.as_bytes().contains(&b)
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
        if n > MAX_NAME_CHARS {
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
        if s.chars().count() > MAX_NAME_CHARS {
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

/// An API key's name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    /// Trim and check.
    pub fn parse(raw: &str) -> Result<KeyName, FieldError> {
        let s = raw.trim();
        match s.chars().count() {
            0 => Err(err("name", "required")),
            n if n > MAX_KEY_NAME_CHARS => Err(err("name", "too_long")),
            _ if s.chars().any(char::is_control) => Err(err("name", "invalid_format")),
            _ => Ok(KeyName(s.to_string())),
        }
    }

    /// The trimmed name.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The scopes of an API key: a non-empty set drawn from the configured scopes, in the order the
/// client gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Check every scope against `allowed`; empty lists, unknown scopes and duplicates are refused.
    pub fn parse(raw: Vec<String>, allowed: &[String]) -> Result<Scopes, FieldError> {
        if raw.is_empty() {
            return Err(err("scopes", "required"));
        }
        if raw.len() > allowed.len() {
            return Err(err("scopes", "invalid_format"));
        }
        for (i, s) in raw.iter().enumerate() {
            if !allowed.contains(s) {
                return Err(err("scopes", "unknown_scope"));
            }
            if raw[..i].contains(s) {
                return Err(err("scopes", "invalid_format"));
            }
        }
        Ok(Scopes(raw))
    }

    /// The scopes.
    pub fn into_inner(self) -> Vec<String> {
        self.0
    }
}

/// How long a new API key lives: a positive duration no longer than the configured maximum.
pub fn parse_expires_in(
    raw: Option<&str>,
    default: std::time::Duration,
    max: std::time::Duration,
) -> Result<std::time::Duration, FieldError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match crate::domain::duration::parse_duration(raw) {
        Ok(d) if d.is_zero() => Err(err("expires_in", "invalid_format")),
        Ok(d) if d > max => Err(err("expires_in", "too_long")),
        Ok(d) => Ok(d),
        Err(_) => Err(err("expires_in", "invalid_format")),
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use std::time::Duration;

    fn allowed() -> Vec<String> {
        vec!["databases:read".into(), "databases:write".into()]
    }

    #[test]
    fn scopes_are_a_non_empty_subset_without_repeats() {
        let ok = Scopes::parse(vec!["databases:read".into()], &allowed()).expect("ok");
        assert_eq!(ok.into_inner(), ["databases:read"]);
        assert_eq!(
            Scopes::parse(vec![], &allowed()),
            Err(err("scopes", "required"))
        );
        assert_eq!(
            Scopes::parse(vec!["*".into()], &allowed()),
            Err(err("scopes", "unknown_scope"))
        );
        assert_eq!(
            Scopes::parse(vec!["admin".into()], &allowed()),
            Err(err("scopes", "unknown_scope"))
        );
        let dup = vec!["databases:read".into(), "databases:read".into()];
        assert_eq!(
            Scopes::parse(dup, &allowed()),
            Err(err("scopes", "invalid_format"))
        );
        let many = vec!["databases:read".to_string(); 10_000];
        assert_eq!(
            Scopes::parse(many, &allowed()),
            Err(err("scopes", "invalid_format"))
        );
    }

    #[test]
    fn expires_in_is_positive_and_bounded() {
        let (def, max) = (Duration::from_secs(100), Duration::from_secs(86_400));
        assert_eq!(parse_expires_in(None, def, max), Ok(def));
        assert_eq!(parse_expires_in(Some("1d"), def, max), Ok(max));
        assert_eq!(
            parse_expires_in(Some("12h"), def, max),
            Ok(Duration::from_secs(43_200))
        );
        assert_eq!(
            parse_expires_in(Some("2d"), def, max),
            Err(err("expires_in", "too_long"))
        );
        for bad in [
            "0d",
            "-1d",
            "soon",
            "1.5h",
            "",
            "99999999999999999999d",
            "1y",
        ] {
            assert_eq!(
                parse_expires_in(Some(bad), def, max),
                Err(err("expires_in", "invalid_format")),
                "{bad}"
            );
        }
    }

    #[test]
    fn key_names_are_bounded() {
        assert_eq!(KeyName::parse(" Prod ").expect("ok").into_inner(), "Prod");
        assert_eq!(KeyName::parse(""), Err(err("name", "required")));
        assert_eq!(
            KeyName::parse(&"k".repeat(101)),
            Err(err("name", "too_long"))
        );
        assert!(KeyName::parse(&"k".repeat(100)).is_ok());
    }
}

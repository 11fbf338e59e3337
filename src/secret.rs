//! A string that must never be printed: tokens, password hashes and other secrets in memory.

use zeroize::Zeroizing;

/// A secret string. `Debug` shows nothing; the bytes are zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: String) -> Self {
        Secret(Zeroizing::new(s))
    }

    /// The secret itself, for the one place that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_hides_the_value() {
        let s = super::Secret::new("tok-123".into());
        assert_eq!(format!("{s:?}"), "Secret(<hidden>)");
        assert_eq!(s.expose(), "tok-123");
    }
}

/// Secret bytes at rest or in memory (a TOTP secret): `Debug` shows nothing, zeroed on drop.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wrap secret bytes.
    pub fn new(b: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(b))
    }

    /// The bytes, for the one place that must use them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(<hidden>)")
    }
}

impl serde::Serialize for SecretBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SecretBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<SecretBytes, E> {
                Ok(SecretBytes::new(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<SecretBytes, E> {
                Ok(SecretBytes::new(v))
            }
            // Formats without a byte type (JSON, as in an export) write bytes as a sequence.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SecretBytes, A::Error> {
                let mut out =
                    zeroize::Zeroizing::new(Vec::with_capacity(seq.size_hint().unwrap_or(0)));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(SecretBytes::new(std::mem::take(&mut *out)))
            }
        }
        d.deserialize_bytes(V)
    }
}

#[cfg(test)]
mod bytes_tests {
    #[test]
    fn secret_bytes_survive_json_as_an_export_writes_them() {
        let s = super::SecretBytes::new(vec![0, 1, 255]);
        let text = serde_json::to_string(&s).expect("json");
        let back: super::SecretBytes = serde_json::from_str(&text).expect("back");
        assert_eq!(back.expose(), &[0, 1, 255]);
        assert!(serde_json::from_str::<super::SecretBytes>("[256]").is_err());
    }
}

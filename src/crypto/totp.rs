//! TOTP (RFC 6238) over HOTP (RFC 4226): HMAC-SHA1, 6 digits, 30-second steps; the otpauth://
//! URI authenticator apps scan, and its QR code as SVG. Pure functions of (secret, time).

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::clock::UnixTime;

use super::random;

/// Seconds per step.
pub const STEP: i64 = 30;
/// Steps of clock drift accepted either side of now (RFC 6238 §5.2 recommends at most one).
pub const WINDOW: i64 = 1;
/// Secret length: 160 bits, as RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;

/// A fresh random secret.
pub fn new_secret() -> [u8; SECRET_LEN] {
    random::bytes::<SECRET_LEN>()
}

/// The secret as authenticator apps take it: base32 without padding.
pub fn encode_secret(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// HOTP value for `counter`, 6 digits with leading zeros (RFC 4226 §5.3).
pub fn hotp(secret: &[u8], counter: u64) -> String {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        unreachable!("HMAC accepts keys of any length");
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    format!("{:06}", bin % 1_000_000)
}

/// The step a time falls in.
pub fn step(t: UnixTime) -> i64 {
    t.div_euclid(STEP)
}

/// Find the step within the window around `now` whose code is `code`, skipping steps at or before
/// `last_used` (a step is accepted once per user: RFC 6238 §5.2). `code` must be exactly six
/// ASCII digits; comparison is constant-time.
pub fn matching_step(
    secret: &[u8],
    code: &str,
    now: UnixTime,
    last_used: Option<i64>,
) -> Option<i64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step(now);
    let mut found = None;
    // Check every candidate so the time taken does not depend on which one matched.
    for s in (current - WINDOW)..=(current + WINDOW) {
        let counter = u64::try_from(s).unwrap_or(0);
        let fresh = last_used.is_none_or(|l| s > l);
        if random::ct_eq(hotp(secret, counter).as_bytes(), code.as_bytes())
            && fresh
            && found.is_none()
        {
            found = Some(s);
        }
    }
    found
}

/// `otpauth://totp/{issuer}:{account}?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`, with
/// label and issuer percent-encoded (RFC 3986 unreserved characters kept).
pub fn otpauth_url(issuer: &str, account: &str, secret_b32: &str) -> String {
    let issuer_enc = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer_enc}:{}?secret={secret_b32}&issuer={issuer_enc}&algorithm=SHA1&digits=6&period=30",
        percent_encode(account)
    )
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An SVG image of the QR code of `data`.
pub fn qr_svg(data: &str) -> Option<String> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    Some(code.render::<svg::Color>().min_dimensions(200, 200).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d_hotp_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (count, want) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, count as u64), *want, "count {count}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha1_vectors_six_digits() {
        for (t, want) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(hotp(RFC_SECRET, step(t) as u64), want, "t={t}");
            assert_eq!(matching_step(RFC_SECRET, want, t, None), Some(step(t)));
        }
    }

    #[test]
    fn the_window_is_one_step_either_side() {
        // At t = 59 (step 1): steps 0, 1 and 2 are accepted, step 3 is not.
        assert_eq!(matching_step(RFC_SECRET, "755224", 59, None), Some(0));
        assert_eq!(matching_step(RFC_SECRET, "287082", 59, None), Some(1));
        assert_eq!(matching_step(RFC_SECRET, "359152", 59, None), Some(2));
        assert_eq!(matching_step(RFC_SECRET, "969429", 59, None), None);
    }

    #[test]
    fn a_step_is_accepted_once() {
        assert_eq!(
            matching_step(RFC_SECRET, "287082", 59, Some(1)),
            None,
            "replay"
        );
        assert_eq!(
            matching_step(RFC_SECRET, "755224", 59, Some(1)),
            None,
            "older step"
        );
        assert_eq!(
            matching_step(RFC_SECRET, "359152", 61, Some(1)),
            Some(2),
            "newer step"
        );
    }

    #[test]
    fn only_six_ascii_digits_are_codes() {
        for bad in [
            "28708",
            "2870822",
            "28708a",
            " 287082",
            "２８７０８２",
            "",
            "-28708",
        ] {
            assert_eq!(matching_step(RFC_SECRET, bad, 59, None), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_160_bit_base32_without_padding() {
        let s = encode_secret(&new_secret());
        assert_eq!(s.len(), 32);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(
            encode_secret(RFC_SECRET),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn otpauth_urls_encode_label_and_issuer() {
        let url = otpauth_url("ACME Co", "john.doe+x@email.com", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            url,
            "otpauth://totp/ACME%20Co:john.doe%2Bx%40email.com?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"
        );
        let hostile = otpauth_url("A&secret=B", "a:b?c#d", "S");
        assert_eq!(hostile.matches("secret=").count(), 1, "{hostile}");
        assert_eq!(hostile.matches('?').count(), 1);
        assert!(!hostile.contains('#'));
    }

    #[test]
    fn qr_codes_render_as_svg() {
        let svg = qr_svg("otpauth://totp/X:y?secret=JBSWY3DPEHPK3PXP&issuer=X").expect("svg");
        assert!(svg.contains("<svg") && svg.ends_with("</svg>"));
    }
}

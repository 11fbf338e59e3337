//! The one duration syntax of config and API: a positive whole number and a unit, "90s", "15m", "12h", "30d".

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// Not `<digits><s|m|h|d>`.
    Format,
    /// The value does not fit in seconds as an i64.
    Overflow,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Format => f.write_str(
                "must be a whole number followed by s, m, h or d, like \"90s\" or \"30d\"",
            ),
            DurationError::Overflow => f.write_str("is too large"),
        }
    }
}

/// Parse `"<n><unit>"`. Zero is allowed here; callers that need a positive value say so.
/// No signs, spaces, fractions or compound forms: a duration that reads two ways is refused.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let unit = s.chars().last().ok_or(DurationError::Format)?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::Format);
    }
    let n: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
    let mult: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(DurationError::Format),
    };
    let secs = n.checked_mul(mult).ok_or(DurationError::Overflow)?;
    // Everything downstream adds durations to i64 Unix times; keep a margin so that never overflows.
    if secs > (i64::MAX as u64) / 4 {
        return Err(DurationError::Overflow);
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "", "s", "15", "15x", "-5m", "+5m", "1.5h", " 5m", "5m ", "5 m", "1h30m", "5M", "٣d",
        ] {
            assert_eq!(parse_duration(bad), Err(DurationError::Format), "{bad:?}");
        }
    }

    #[test]
    fn refuses_overflow() {
        assert_eq!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration("999999999999999999999d"),
            Err(DurationError::Format)
        );
    }
}

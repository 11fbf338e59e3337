//! Mail waiting to be sent, and the rule for when a failed delivery is tried again.

use crate::clock::UnixTime;

/// A message a use case wants sent: one recipient, a subject, and the same content as plain
/// text and as HTML. Bodies may carry one-time links, so `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The `text/plain` part.
    pub text: String,
    /// The `text/html` part.
    pub html: String,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// `mail-` + random; also the stem of its `Message-ID`, so a retry of a message a relay
    /// did accept carries the same id and can be recognised as a duplicate.
    pub id: String,
    /// What to send.
    pub mail: OutgoingMail,
    /// Failed deliveries so far.
    pub attempts: u32,
    /// Not sent before this time.
    pub next_attempt_at: UnixTime,
    /// When it was queued.
    pub created_at: UnixTime,
}

/// The first retry waits this long (seconds)...
pub const FIRST_RETRY_SECS: i64 = 5;
/// ...and each later one twice as long as the one before, up to this.
pub const MAX_RETRY_SECS: i64 = 30 * 60;

/// How long to wait after the `failures`-th failed delivery (1 for the first): 5 s doubling to
/// 30 min, so a relay that is down for a minute costs seconds and one down for a day is not
/// hammered.
pub fn retry_delay(failures: u32) -> i64 {
    let doublings = failures.saturating_sub(1).min(20);
    FIRST_RETRY_SECS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_RETRY_SECS)
}

/// What becomes of a message whose delivery just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    RetryAt(UnixTime),
    /// It has failed `max_attempts` times: drop it.
    GiveUp,
}

impl QueuedMail {
    /// Count one more failed delivery at `now`: schedule the next try, or give up once
    /// `max_attempts` tries have failed.
    pub fn failed(&mut self, now: UnixTime, max_attempts: u32) -> AfterFailure {
        self.attempts = self.attempts.saturating_add(1);
        if self.attempts >= max_attempts {
            return AfterFailure::GiveUp;
        }
        self.next_attempt_at = now.saturating_add(retry_delay(self.attempts));
        AfterFailure::RetryAt(self.next_attempt_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued() -> QueuedMail {
        QueuedMail {
            id: "mail-1".into(),
            mail: OutgoingMail {
                to: "a@example.com".into(),
                subject: "Hello".into(),
                text: "link https://x/?token=SECRET".into(),
                html: "<a href=\"https://x/?token=SECRET\">x</a>".into(),
            },
            attempts: 0,
            next_attempt_at: 100,
            created_at: 100,
        }
    }

    #[test]
    fn retries_back_off_from_five_seconds_doubling_to_thirty_minutes() {
        let delays: Vec<i64> = (1..=12).map(retry_delay).collect();
        assert_eq!(
            delays,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 1800, 1800, 1800]
        );
        assert_eq!(retry_delay(0), 5);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY_SECS);
    }

    #[test]
    fn a_failure_schedules_the_next_try_until_max_attempts() {
        let mut m = queued();
        assert_eq!(m.failed(1000, 3), AfterFailure::RetryAt(1005));
        assert_eq!(m.failed(1005, 3), AfterFailure::RetryAt(1015));
        assert_eq!(m.failed(1015, 3), AfterFailure::GiveUp);
        assert_eq!(m.attempts, 3);
    }

    #[test]
    fn debug_never_shows_the_bodies() {
        let shown = format!("{:?}", queued());
        assert!(shown.contains("a@example.com"), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}

/// What a mailed one-time token proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The account owns its email address.
    Verify,
    /// The account's owner reads its mailbox: a password may be reset.
    Reset,
    /// The owner reads the new address of an email change.
    Change,
}

impl TokenKind {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Verify => "verify",
            TokenKind::Reset => "reset",
            TokenKind::Change => "change",
        }
    }
}

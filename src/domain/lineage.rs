//! A session's refresh-token lineage and the rule for presenting one (RFC 9700 §4.14.2): the
//! live token rotates; the one rotated out last, again within the grace, is answered from
//! memory; any other rotated-out token is reuse and ends the session. Pure, so every store
//! backend applies the same rule inside its own transaction.

use crate::clock::UnixTime;

/// How many rotated-out tokens per session still count as reuse when presented. Older ones are
/// simply unknown: their holder gets nothing either way, and storage stays bounded.
pub const REMEMBERED_PREDECESSORS: usize = 16;

/// The hashes of a session's live refresh token and of its recent predecessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// SHA-256 of the live token.
    pub current: [u8; 32],
    /// SHA-256 of recently rotated-out tokens, oldest first.
    pub previous: Vec<[u8; 32]>,
    /// When `current` was issued.
    pub rotated_at: UnixTime,
}

/// What presenting a token of this lineage means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// The live token: rotate it.
    Live,
    /// The token rotated out last, within the grace: the successor already given out stands.
    WithinGrace,
    /// An older token, or the last one after the grace: end the session.
    Reused,
}

impl Lineage {
    /// Judge `presented` (a hash this lineage knows) at `now` with a grace of `grace_secs`.
    pub fn present(&self, presented: &[u8; 32], now: UnixTime, grace_secs: i64) -> Presented {
        if &self.current == presented {
            return Presented::Live;
        }
        let last = self.previous.last() == Some(presented);
        if last && grace_secs > 0 && now - self.rotated_at <= grace_secs {
            Presented::WithinGrace
        } else {
            Presented::Reused
        }
    }

    /// Make `new` the live token at `now`; returns the predecessor now forgotten, if any, whose
    /// index entry the store must drop.
    pub fn rotate(&mut self, new: [u8; 32], now: UnixTime) -> Option<[u8; 32]> {
        self.previous.push(self.current);
        self.current = new;
        self.rotated_at = now;
        (self.previous.len() > REMEMBERED_PREDECESSORS).then(|| self.previous.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lineage() -> Lineage {
        Lineage {
            current: [1; 32],
            previous: Vec::new(),
            rotated_at: 100,
        }
    }

    #[test]
    fn the_live_token_rotates_and_its_predecessor_is_reuse() {
        let mut l = lineage();
        assert_eq!(l.present(&[1; 32], 100, 0), Presented::Live);
        assert_eq!(l.rotate([2; 32], 110), None);
        assert_eq!(l.present(&[2; 32], 111, 0), Presented::Live);
        assert_eq!(l.present(&[1; 32], 111, 0), Presented::Reused, "no grace");
    }

    #[test]
    fn only_the_last_predecessor_within_the_grace_is_spared() {
        let mut l = lineage();
        l.rotate([2; 32], 110);
        l.rotate([3; 32], 120);
        assert_eq!(l.present(&[2; 32], 125, 10), Presented::WithinGrace);
        assert_eq!(l.present(&[2; 32], 131, 10), Presented::Reused, "after it");
        assert_eq!(
            l.present(&[1; 32], 121, 10),
            Presented::Reused,
            "an older one"
        );
    }

    #[test]
    fn old_predecessors_are_forgotten() {
        let mut l = lineage();
        let mut forgotten = Vec::new();
        for i in 2..=(REMEMBERED_PREDECESSORS as u8 + 3) {
            forgotten.extend(l.rotate([i; 32], i64::from(i)));
        }
        assert_eq!(forgotten, [[1; 32], [2; 32]]);
        assert_eq!(l.previous.len(), REMEMBERED_PREDECESSORS);
    }
}

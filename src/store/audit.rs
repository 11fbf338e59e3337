//! The audit log: security events appended inside the transaction of the change they record,
//! each linked to the one before by the SHA-256 of its stored bytes; reading a user's page of
//! them, listing and walking the chain for operators, and pruning old ones behind an anchor.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use crate::clock::UnixTime;
use crate::crypto::random::sha256;
use crate::domain::account::SecondFactorUse;
use crate::domain::audit::{Actor, Anchor, BrokenLink, ChainCheck, Entry, Event, EventKind};

use super::records::{decode, encode, AuditAnchorRecord, AuditRecord, RECORD_VERSION};
use super::schema::{AUDIT, AUDIT_BY_USER, AUDIT_META};
use super::{Changed, RedbStore, StoreError};

const ANCHOR: &str = "anchor";

/// Append `events` to the chain, in order, inside `tx`: the change they record and they commit
/// or vanish together.
pub(super) fn append(tx: &WriteTransaction, events: &[Event]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut log = tx.open_table(AUDIT)?;
    let mut by_user = tx.open_table(AUDIT_BY_USER)?;
    let (mut seq, mut prev) = match log.last()? {
        Some((k, v)) => (k.value(), sha256(v.value())),
        None => match read_anchor(&tx.open_table(AUDIT_META)?)? {
            Some(a) => (a.seq, a.hash),
            None => (0, [0; 32]),
        },
    };
    for e in events {
        seq += 1;
        let bytes = encode(&AuditRecord::new(e, seq, prev))?;
        log.insert(seq, bytes.as_slice())?;
        if let Some(user) = &e.user_id {
            by_user.insert((user.as_str(), seq), ())?;
        }
        prev = sha256(&bytes);
    }
    Ok(())
}

/// `event`, followed by `backup_code_used` when the second factor it took was a backup code:
/// spending one is worth its own line.
pub(super) fn with_factor(event: Event, used: Option<&SecondFactorUse>) -> Vec<Event> {
    let backup = matches!(used, Some(SecondFactorUse::BackupCode { .. }));
    let spent = backup.then(|| event.also(EventKind::BackupCodeUsed));
    std::iter::once(event).chain(spent).collect()
}

fn read_anchor(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<Anchor>, StoreError> {
    let Some(bytes) = meta.get(ANCHOR)? else {
        return Ok(None);
    };
    decode::<AuditAnchorRecord>("audit_meta", bytes.value()).map(|r| Some(anchor_of(&r)))
}

/// The chain's anchor a stored anchor record holds.
pub(super) fn anchor_of(r: &AuditAnchorRecord) -> Anchor {
    Anchor {
        seq: r.seq,
        hash: r.hash,
        pruned: r.pruned,
    }
}

/// Walks stored entries oldest first, checking each link, for either backend.
pub(super) struct Walker {
    check: ChainCheck,
    broken: Option<BrokenLink>,
    hash_of: Option<u64>,
    hash_at: Option<[u8; 32]>,
    anchor: Option<Anchor>,
}

impl Walker {
    /// A walk of what is kept after `anchor`, noting the hash of entry `hash_of`.
    pub(super) fn new(anchor: Option<Anchor>, hash_of: Option<u64>) -> Walker {
        Walker {
            check: ChainCheck::new(anchor),
            broken: None,
            hash_of,
            hash_at: None,
            anchor,
        }
    }

    /// The next entry, stored at `key` as `bytes`; false once the chain is broken.
    pub(super) fn entry(&mut self, key: u64, bytes: &[u8]) -> bool {
        let hash = sha256(bytes);
        let linked = match decode::<AuditRecord>("audit", bytes) {
            Ok(r) => self.check.next(key, r.seq, r.prev, hash),
            Err(_) => Err(BrokenLink {
                seq: key,
                why: "it does not decode".into(),
            }),
        };
        if let Err(b) = linked {
            self.broken = Some(b);
            return false;
        }
        if Some(key) == self.hash_of {
            self.hash_at = Some(hash);
        }
        true
    }

    /// What the walk found.
    pub(super) fn finish(self) -> AuditWalk {
        AuditWalk {
            count: self.check.count,
            head_seq: self.check.head_seq(),
            head: self.check.head(),
            broken: self.broken,
            hash_at: self.hash_at,
            anchor: self.anchor,
        }
    }
}

/// `bytes` (an entry) changed as an attacker would change it: another kind, another address.
pub(super) fn tampered(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut r: AuditRecord = decode("audit", bytes)?;
    r.kind = EventKind::LoginSucceeded.as_str().into();
    r.ip = Some("192.0.2.1".into());
    encode(&r)
}

/// `bytes` (an entry) linked to the entry stored as `prev` instead.
pub(super) fn relinked(bytes: &[u8], prev: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut r: AuditRecord = decode("audit", bytes)?;
    r.prev = sha256(prev);
    encode(&r)
}

/// An entry as stored at `key`, decoded, with the hash of its bytes.
pub(super) fn to_entry(key: u64, bytes: &[u8]) -> Result<Entry, StoreError> {
    let r: AuditRecord = decode("audit", bytes)?;
    let kind = EventKind::parse(&r.kind)
        .ok_or_else(|| StoreError::Corrupt(format!("audit {key}: unknown kind {:?}", r.kind)))?;
    let actor = Actor::parse(&r.actor)
        .ok_or_else(|| StoreError::Corrupt(format!("audit {key}: unknown actor {:?}", r.actor)))?;
    Ok(Entry {
        seq: r.seq,
        prev: r.prev,
        hash: sha256(bytes),
        event: Event {
            kind,
            at: r.at,
            user_id: r.user_id,
            actor,
            ip: r.ip,
            user_agent: r.user_agent,
            session_id: r.session_id,
            key_id: r.key_id,
            detail: r.detail,
        },
    })
}

/// Which entries an operator asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this account's.
    pub user_id: Option<String>,
    /// Only of this kind.
    pub kind: Option<EventKind>,
    /// Only at or after this time.
    pub since: Option<UnixTime>,
    /// Only entries numbered above this (paging oldest first).
    pub after: Option<u64>,
    /// Only entries numbered below this (paging newest first).
    pub before: Option<u64>,
    /// Newest first rather than oldest first.
    pub newest_first: bool,
    /// At most this many.
    pub limit: usize,
}

/// The result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditWalk {
    /// Entries that linked up, up to the first broken one.
    pub count: u64,
    /// The last good entry's number (or the anchor's).
    pub head_seq: u64,
    /// Its hash.
    pub head: [u8; 32],
    /// The first broken link, if any.
    pub broken: Option<BrokenLink>,
    /// The hash of the entry numbered as asked (`verify --checkpoint`), if it is kept and the
    /// chain up to it holds.
    pub hash_at: Option<[u8; 32]>,
    /// What the kept part starts from.
    pub anchor: Option<Anchor>,
}

impl RedbStore {
    /// Record events that go with no other change (a failed login, a backup taken): one small
    /// transaction, committed with whatever else is queued.
    pub async fn record_events(&self, events: Vec<Event>) -> Result<(), StoreError> {
        self.write(move |tx| append(tx, &events)).await
    }

    /// A user's events, newest first, numbered below `before`; at most `limit`, and whether
    /// there are more.
    pub async fn activity(
        &self,
        user_id: String,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Entry>, bool), StoreError> {
        self.read(move |tx| {
            let index = tx.open_table(AUDIT_BY_USER)?;
            let log = tx.open_table(AUDIT)?;
            let end = before.unwrap_or(u64::MAX);
            let mut out = Vec::with_capacity(limit);
            let mut more = false;
            for item in index
                .range((user_id.as_str(), 0)..(user_id.as_str(), end))?
                .rev()
            {
                let (k, _) = item?;
                let seq = k.value().1;
                if out.len() == limit {
                    more = true;
                    break;
                }
                // An entry pruned while its index row waits for the same prune: skip it.
                if let Some(bytes) = log.get(seq)? {
                    out.push(to_entry(seq, bytes.value())?);
                }
            }
            Ok((out, more))
        })
        .await
    }

    /// Entries for an operator, filtered and paged as `q` says.
    pub async fn audit_entries(&self, q: AuditQuery) -> Result<Vec<Entry>, StoreError> {
        self.read(move |tx| {
            let log = tx.open_table(AUDIT)?;
            let lo = q.after.map_or(0, |a| a.saturating_add(1));
            let hi = q.before.unwrap_or(u64::MAX);
            let mut out = Vec::new();
            let keep = |e: &Entry| {
                q.user_id
                    .as_ref()
                    .is_none_or(|u| e.event.user_id.as_ref() == Some(u))
                    && q.kind.is_none_or(|k| e.event.kind == k)
                    && q.since.is_none_or(|s| e.event.at >= s)
            };
            let range = log.range(lo..hi)?;
            let mut take = |item: Result<_, redb::StorageError>| -> Result<bool, StoreError> {
                let (k, v): (redb::AccessGuard<u64>, redb::AccessGuard<&[u8]>) = item?;
                let e = to_entry(k.value(), v.value())?;
                if keep(&e) {
                    out.push(e);
                }
                Ok(out.len() < q.limit)
            };
            if q.newest_first {
                for item in range.rev() {
                    if !take(item)? {
                        break;
                    }
                }
            } else {
                for item in range {
                    if !take(item)? {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Walk the whole chain from its anchor and check every link; note the hash of entry
    /// `hash_of` on the way.
    pub async fn walk_audit(&self, hash_of: Option<u64>) -> Result<AuditWalk, StoreError> {
        self.read(move |tx| walk(tx, hash_of)).await
    }

    /// Prune entries older than `before`, at most `max` of them, oldest first, and move the
    /// anchor to the last one pruned so the chain still verifies. The count pruned.
    pub async fn prune_audit(&self, before: UnixTime, max: usize) -> Result<u64, StoreError> {
        self.write_if_changed(move |tx| {
            let mut log = tx.open_table(AUDIT)?;
            let mut by_user = tx.open_table(AUDIT_BY_USER)?;
            let mut meta = tx.open_table(AUDIT_META)?;
            let mut gone: Vec<(u64, [u8; 32], Option<String>)> = Vec::new();
            for item in log.iter()? {
                let (k, v) = item?;
                let r: AuditRecord = decode("audit", v.value())?;
                if r.at >= before || gone.len() >= max {
                    break;
                }
                gone.push((k.value(), sha256(v.value()), r.user_id));
            }
            let Some(&(last_seq, last_hash, _)) = gone.last() else {
                return Ok((0, Changed::No));
            };
            for (seq, _, user) in &gone {
                log.remove(*seq)?;
                if let Some(u) = user {
                    by_user.remove((u.as_str(), *seq))?;
                }
            }
            let before_count = read_anchor(&meta)?.map_or(0, |a| a.pruned);
            let n = gone.len() as u64;
            meta.insert(
                ANCHOR,
                encode(&AuditAnchorRecord {
                    v: RECORD_VERSION,
                    seq: last_seq,
                    hash: last_hash,
                    pruned: before_count + n,
                })?
                .as_slice(),
            )?;
            Ok((n, Changed::Yes))
        })
        .await
    }

    /// Damage the log as an attacker with write access to the file would, for tests of
    /// `audit verify`: see `Tamper`.
    #[doc(hidden)]
    pub async fn tamper_audit(&self, seq: u64, how: Tamper) -> Result<(), StoreError> {
        self.write(move |tx| {
            let mut log = tx.open_table(AUDIT)?;
            let bytes = log
                .get(seq)?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| StoreError::Corrupt(format!("no audit entry {seq}")))?;
            match how {
                Tamper::Edit => {
                    log.insert(seq, tampered(&bytes)?.as_slice())?;
                }
                Tamper::Delete => {
                    log.remove(seq)?;
                }
                Tamper::Rewrite => {
                    let mut fresh = tampered(&bytes)?;
                    log.insert(seq, fresh.as_slice())?;
                    let later: Vec<u64> = log
                        .range(seq + 1..)?
                        .map(|i| i.map(|(k, _)| k.value()))
                        .collect::<Result<_, _>>()?;
                    for k in later {
                        let old = log
                            .get(k)?
                            .map(|v| v.value().to_vec())
                            .ok_or_else(|| StoreError::Corrupt(format!("no audit entry {k}")))?;
                        fresh = relinked(&old, &fresh)?;
                        log.insert(k, fresh.as_slice())?;
                    }
                }
                Tamper::SwapWithNext => {
                    let next = log
                        .get(seq + 1)?
                        .map(|v| v.value().to_vec())
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("no audit entry {}", seq + 1))
                        })?;
                    log.insert(seq, next.as_slice())?;
                    log.insert(seq + 1, bytes.as_slice())?;
                }
            }
            Ok(())
        })
        .await
    }
}

/// How `tamper_audit` damages an entry.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Tamper {
    /// Change its content in place.
    Edit,
    /// Remove it.
    Delete,
    /// Exchange it with the entry after it.
    SwapWithNext,
    /// Change its content and re-link every later entry, as an attacker who knows the format
    /// would: the chain holds, and only a checkpoint taken before shows the rewrite.
    Rewrite,
}

/// An event for store tests that need one.
#[cfg(test)]
pub(super) fn test_event() -> Event {
    Event::by_system(EventKind::BackupTaken, 0)
}

fn walk(tx: &ReadTransaction, hash_of: Option<u64>) -> Result<AuditWalk, StoreError> {
    let anchor = read_anchor(&tx.open_table(AUDIT_META)?)?;
    let mut walker = Walker::new(anchor, hash_of);
    for item in tx.open_table(AUDIT)?.iter()? {
        let (k, v) = item?;
        if !walker.entry(k.value(), v.value()) {
            break;
        }
    }
    Ok(walker.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64, user: &str) -> Event {
        Event::by_system(EventKind::BackupTaken, n).user(user)
    }

    async fn store() -> (RedbStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let s = RedbStore::open(&dir.path().join("d").join("db.redb")).expect("open");
        (s, dir)
    }

    #[tokio::test]
    async fn appended_events_chain_up_and_page_per_user() {
        let (s, _d) = store().await;
        for i in 0..5 {
            s.record_events(vec![event(i, if i % 2 == 0 { "a" } else { "b" })])
                .await
                .expect("record");
        }
        let walk = s.walk_audit(Some(3)).await.expect("walk");
        assert_eq!((walk.count, walk.head_seq, walk.broken), (5, 5, None));
        assert!(walk.hash_at.is_some());
        let (page, more) = s.activity("a".into(), None, 2).await.expect("page");
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 3]);
        assert!(more);
        let (page, more) = s.activity("a".into(), Some(3), 2).await.expect("page");
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
        assert!(!more);
    }

    #[tokio::test]
    async fn pruning_keeps_the_rest_verifiable_and_new_entries_link_on() {
        let (s, _d) = store().await;
        for i in 0..6 {
            s.record_events(vec![event(i * 100, "a")])
                .await
                .expect("record");
        }
        assert_eq!(s.prune_audit(250, 2).await.expect("prune"), 2);
        assert_eq!(s.prune_audit(250, 100).await.expect("prune"), 1);
        let walk = s.walk_audit(None).await.expect("walk");
        assert_eq!(walk.broken, None);
        assert_eq!(walk.count, 3);
        assert_eq!(walk.anchor.map(|a| (a.seq, a.pruned)), Some((3, 3)));
        let (page, _) = s.activity("a".into(), None, 10).await.expect("page");
        assert_eq!(page.len(), 3, "pruned entries left the index too");
        // Everything pruned: the next entry links to the anchor.
        s.prune_audit(10_000, 100).await.expect("prune");
        s.record_events(vec![event(20_000, "a")])
            .await
            .expect("record");
        let walk = s.walk_audit(None).await.expect("walk");
        assert_eq!((walk.count, walk.head_seq, walk.broken), (1, 7, None));
    }

    #[tokio::test]
    async fn every_kind_of_tampering_names_the_first_broken_entry() {
        for (how, at) in [
            (Tamper::Edit, 3),
            (Tamper::Delete, 3),
            (Tamper::SwapWithNext, 2),
        ] {
            let (s, _d) = store().await;
            for i in 0..5 {
                s.record_events(vec![event(i, "a")]).await.expect("record");
            }
            s.tamper_audit(2, how).await.expect("tamper");
            let walk = s.walk_audit(None).await.expect("walk");
            let broken = walk.broken.expect("broken");
            assert_eq!(broken.seq, at, "{how:?}: {}", broken.why);
        }
    }

    #[tokio::test]
    async fn a_rewrite_that_relinks_the_chain_changes_the_hash_a_checkpoint_kept() {
        let (s, _d) = store().await;
        for i in 0..5 {
            s.record_events(vec![event(i, "a")]).await.expect("record");
        }
        let before = s.walk_audit(Some(4)).await.expect("walk").hash_at;
        s.tamper_audit(2, Tamper::Rewrite).await.expect("tamper");
        let after = s.walk_audit(Some(4)).await.expect("walk");
        assert_eq!(after.broken, None, "the chain itself holds");
        assert_ne!(after.hash_at, before, "but entry 4's hash moved");
    }
}

//! The mail outbox: messages queued in the same transaction as what they announce (a token, a
//! changed password), so a crash loses none, and removed only once delivered or given up.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use crate::clock::UnixTime;
use crate::domain::mail::{AfterFailure, OutgoingMail, QueuedMail};

use super::records::{decode, encode, OutboxRecord};
use super::schema::OUTBOX;
use super::{Changed, RedbStore, StoreError};

/// Queue `mail` for delivery as part of the caller's transaction: other use cases call this
/// beside their own writes, so the message exists exactly when they commit. Returns its id.
/// The caller wakes the delivery worker once its write has returned.
pub(super) fn queue_mail(
    tx: &WriteTransaction,
    mail: &OutgoingMail,
    now: UnixTime,
) -> Result<String, StoreError> {
    let queued = QueuedMail {
        id: crate::crypto::random::id("mail-"),
        mail: mail.clone(),
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
    };
    put(tx, &queued)?;
    Ok(queued.id)
}

fn put(tx: &WriteTransaction, queued: &QueuedMail) -> Result<(), StoreError> {
    tx.open_table(OUTBOX)?.insert(
        queued.id.as_str(),
        encode(&OutboxRecord::from(queued))?.as_slice(),
    )?;
    Ok(())
}

impl RedbStore {
    /// Queue one message on its own; returns its id.
    pub async fn queue_mail(
        &self,
        mail: OutgoingMail,
        now: UnixTime,
    ) -> Result<String, StoreError> {
        self.write(move |tx| queue_mail(tx, &mail, now)).await
    }

    /// Up to `limit` messages whose next attempt is due at `now`, the longest-waiting first.
    /// A scan: the outbox holds what the relay has not taken yet, normally nothing.
    pub async fn due_mail(
        &self,
        now: UnixTime,
        limit: usize,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        self.read(move |tx| {
            let mut due = Vec::new();
            for row in tx.open_table(OUTBOX)?.iter()? {
                let (_, bytes) = row?;
                let r: OutboxRecord = decode("outbox", bytes.value())?;
                if r.next_attempt_at <= now {
                    due.push(QueuedMail::from(r));
                }
            }
            due.sort_by(|a, b| {
                (a.next_attempt_at, a.created_at, &a.id).cmp(&(
                    b.next_attempt_at,
                    b.created_at,
                    &b.id,
                ))
            });
            due.truncate(limit);
            Ok(due)
        })
        .await
    }

    /// The message was handed over: forget it.
    pub async fn mail_sent(&self, id: String) -> Result<(), StoreError> {
        self.write_if_changed(move |tx| {
            let removed = tx.open_table(OUTBOX)?.remove(id.as_str())?.is_some();
            Ok(((), if removed { Changed::Yes } else { Changed::No }))
        })
        .await
    }

    /// A delivery failed at `now`: schedule the next try, or delete the message once it has
    /// failed `max_attempts` times. `None` if it is no longer queued.
    pub async fn mail_failed(
        &self,
        id: String,
        now: UnixTime,
        max_attempts: u32,
    ) -> Result<Option<AfterFailure>, StoreError> {
        self.write_if_changed(move |tx| {
            let found = {
                let table = tx.open_table(OUTBOX)?;
                let bytes = table.get(id.as_str())?;
                match bytes {
                    None => None,
                    Some(b) => Some(QueuedMail::from(decode::<OutboxRecord>(
                        "outbox",
                        b.value(),
                    )?)),
                }
            };
            let Some(mut queued) = found else {
                return Ok((None, Changed::No));
            };
            let after = queued.failed(now, max_attempts);
            match after {
                AfterFailure::GiveUp => {
                    tx.open_table(OUTBOX)?.remove(id.as_str())?;
                }
                AfterFailure::RetryAt(_) => put(tx, &queued)?,
            }
            Ok((Some(after), Changed::Yes))
        })
        .await
    }

    /// Messages waiting in the outbox.
    pub async fn queued_mail_count(&self) -> Result<u64, StoreError> {
        self.read(|tx| Ok(tx.open_table(OUTBOX)?.len()?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(to: &str) -> OutgoingMail {
        OutgoingMail {
            to: to.into(),
            subject: "Hi".into(),
            text: "text".into(),
            html: "<p>html</p>".into(),
        }
    }

    #[tokio::test]
    async fn queued_mail_is_due_until_sent_and_backs_off_after_failures() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = RedbStore::open(&tmp.path().join("db.redb")).expect("open");
        let a = store
            .queue_mail(mail("a@x.test"), 100)
            .await
            .expect("queue");
        let b = store
            .queue_mail(mail("b@x.test"), 101)
            .await
            .expect("queue");
        assert!(store.due_mail(99, 10).await.expect("due").is_empty());
        let due = store.due_mail(101, 10).await.expect("due");
        assert_eq!(
            due.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            [a.as_str(), b.as_str()]
        );
        assert_eq!(due[0].mail, mail("a@x.test"));
        assert_eq!(store.due_mail(101, 1).await.expect("due").len(), 1);

        store.mail_sent(b.clone()).await.expect("sent");
        assert_eq!(
            store.mail_failed(a.clone(), 200, 2).await.expect("failed"),
            Some(AfterFailure::RetryAt(205))
        );
        assert!(store.due_mail(204, 10).await.expect("due").is_empty());
        assert_eq!(store.due_mail(205, 10).await.expect("due")[0].attempts, 1);
        assert_eq!(store.queued_mail_count().await.expect("count"), 1);
        assert_eq!(
            store.mail_failed(a.clone(), 205, 2).await.expect("failed"),
            Some(AfterFailure::GiveUp)
        );
        assert_eq!(store.queued_mail_count().await.expect("count"), 0);
        assert_eq!(store.mail_failed(a, 300, 2).await.expect("gone"), None);
    }

    #[tokio::test]
    async fn a_schema_2_database_gains_the_outbox_and_the_audit_log() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("db.redb");
        {
            let db = redb::Database::create(&path).expect("create");
            let tx = db.begin_write().expect("tx");
            tx.open_table(super::super::schema::META)
                .expect("meta")
                .insert("schema_version", 2)
                .expect("version");
            tx.commit().expect("commit");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let store = RedbStore::open(&path).expect("open migrates");
        assert_eq!(store.schema_version().await.expect("version"), 4);
        store.queue_mail(mail("a@x.test"), 1).await.expect("queue");
        assert_eq!(store.queued_mail_count().await.expect("count"), 1);
        // And the audit log (schema 4) starts its chain there.
        let event =
            crate::domain::audit::Event::by_system(crate::domain::audit::EventKind::BackupTaken, 1);
        store.record_events(vec![event]).await.expect("record");
        let walk = store.walk_audit(None).await.expect("walk");
        assert_eq!((walk.count, walk.broken), (1, None));
    }
}

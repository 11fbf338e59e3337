//! Group commit: one thread runs every write transaction of a store, and one fsync acknowledges
//! all the writes that queued while the previous one was on its way to disk.
//!
//! redb admits one write transaction at a time, so concurrent writers always queued; what they
//! paid was one fsync each. Here the writer takes everything queued (up to `MAX_BATCH`) and runs
//! each submission in a write transaction of its own, committed without a sync
//! (`Durability::None`) or aborted, so a failing, refusing or panicking submission loses only its
//! own changes. The batch's last submission commits with `Durability::Immediate`, which makes
//! every earlier commit of the batch durable with it (an empty commit does so when the last one
//! wrote nothing). Only then does anyone hear back: no `Ok` reaches a caller before its write is
//! on disk, and if the sync fails, every submission that wrote, or that read what another wrote,
//! receives the error.
//!
//! Ephemeral savepoints in one shared transaction would have been the other way to isolate
//! submissions, but redb refuses a savepoint once a table has been opened in the transaction.
//!
//! Readers (and the next submissions) see a commit up to one batch before it is durable. A crash
//! in that window loses the write together with its unsent reply. A reader may have acted on it
//! meanwhile (refused a request of a session being revoked, served one of a user being
//! re-enabled); whatever that reader writes in turn is committed after it, in order, so it is
//! durable only if the write it saw is.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use super::{Changed, StoreError};

/// At most this many submissions share one commit, so a caller waits for at most this many
/// others' transactions (each tens of microseconds) and one fsync.
const MAX_BATCH: usize = 64;

/// What a caller gets back: the closure's result, or its panic to re-raise.
type Reply<T> = std::thread::Result<Result<T, StoreError>>;

/// How a submission is answered once its fate is known: `Ok` if what it did (or saw) is
/// durable, or the error that kept it from becoming so.
type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// One queued write, with its result type erased.
trait Job: Send {
    /// Run the work inside `tx`.
    fn run(self: Box<Self>, tx: &WriteTransaction) -> Ran;
    /// Answer without running: no transaction could be opened for it.
    fn refuse(self: Box<Self>, error: StoreError);
}

/// What a job did in its transaction.
struct Ran {
    /// It succeeded and changed something: commit rather than abort.
    commit: bool,
    answer: Answer,
}

struct Submission<T, F> {
    work: F,
    reply: oneshot::Sender<Reply<T>>,
    /// The caller's span, so lines logged while the work runs still name their request.
    span: tracing::Span,
}

impl<T, F> Job for Submission<T, F>
where
    T: Send + 'static,
    F: FnOnce(&WriteTransaction) -> Result<(T, Changed), StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, tx: &WriteTransaction) -> Ran {
        let Submission { work, reply, span } = *self;
        let outcome = span.in_scope(|| catch_unwind(AssertUnwindSafe(|| work(tx))));
        Ran {
            commit: matches!(outcome, Ok(Ok((_, Changed::Yes)))),
            answer: Box::new(move |fate| {
                let answer = match outcome {
                    Ok(Ok((value, _))) => Ok(fate.map(|()| value)),
                    Ok(Err(e)) => Ok(Err(e)),
                    Err(panic) => Err(panic),
                };
                // A caller that went away no longer needs its answer.
                let _ = reply.send(answer);
            }),
        }
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Ok(Err(error)));
    }
}

/// The handle to a store's writer thread; the thread ends, releasing the database, when this is
/// dropped.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    counts: Arc<Counts>,
}

/// How writes were grouped, for the log line at the end and for tests.
#[derive(Default)]
struct Counts {
    /// Submissions run.
    writes: AtomicU64,
    /// Durable commits made.
    syncs: AtomicU64,
}

impl Writer {
    /// Start the writer thread for `db`.
    pub(super) fn start(db: Arc<Database>) -> Result<Writer, StoreError> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let counts = Arc::new(Counts::default());
        let counted = counts.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Ok(first) = jobs.recv() {
                    let mut batch = vec![first];
                    batch.extend(jobs.try_iter().take(MAX_BATCH - 1));
                    commit_batch(&db, batch, &counted);
                }
            })
            .map_err(|e| StoreError::Setup(format!("cannot start the store writer: {e}")))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            counts,
        })
    }

    /// Queue `work`; the receiver answers once its commit is durable (or it failed).
    fn enqueue<T, F>(&self, work: F) -> Result<oneshot::Receiver<Reply<T>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, Changed), StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Submission {
            work,
            reply,
            span: tracing::Span::current(),
        });
        self.queue
            .as_ref()
            .and_then(|q| q.send(job).ok())
            .ok_or(StoreError::Cancelled)?;
        Ok(answer)
    }

    /// Run `work` in a write transaction of its own, committed if it returns `Ok` with
    /// `Changed::Yes`, and return once that commit is durable. A panic in `work` is re-raised
    /// here, as `blocking::run` does.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, Changed), StoreError> + Send + 'static,
    {
        match self.enqueue(work)?.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // The writer thread is gone: it ended with the store, or died of a redb panic.
            Err(_) => Err(StoreError::Cancelled),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread after the batch in hand; joining it means the
        // database is closed when the last store handle is gone, so the file can be reopened.
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() && thread.join().is_err() {
                tracing::error!("the store writer panicked");
            }
        }
        tracing::debug!(
            writes = self.counts.writes.load(Ordering::Relaxed),
            durable_commits = self.counts.syncs.load(Ordering::Relaxed),
            "store writer stopped"
        );
    }
}

/// An error for each of several callers of one failed commit.
#[derive(Debug, Clone)]
struct Shared(Arc<StoreError>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Run a batch of jobs as described at the top, and answer each.
fn commit_batch(db: &Database, batch: Vec<Box<dyn Job>>, counts: &Counts) {
    let last = batch.len() - 1;
    counts
        .writes
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    // Answers that wait for the batch's sync: jobs that committed, or that ran after one did.
    let mut waiting: Vec<Answer> = Vec::new();
    let mut unsynced = false;
    let mut sync = None;
    for (i, job) in batch.into_iter().enumerate() {
        let mut tx = match db.begin_write() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "store write transaction not started");
                job.refuse(e.into());
                continue;
            }
        };
        let saw_unsynced = unsynced;
        let ran = job.run(&tx);
        if !ran.commit {
            if let Err(e) = tx.abort() {
                tracing::error!(error = %e, "store write transaction not aborted");
            }
            if saw_unsynced {
                waiting.push(ran.answer);
            } else {
                (ran.answer)(Ok(()));
            }
        } else if i == last {
            sync = Some(tx.commit().map_err(StoreError::from));
            waiting.push(ran.answer);
        } else {
            let deferred = tx
                .set_durability(Durability::None)
                .map_err(|e| StoreError::Backend(Box::new(e)))
                .and_then(|()| tx.commit().map_err(StoreError::from));
            match deferred {
                Ok(()) => {
                    waiting.push(ran.answer);
                    unsynced = true;
                }
                Err(e) => {
                    tracing::error!(error = %e, "store commit failed");
                    (ran.answer)(Err(e));
                }
            }
        }
    }
    if unsynced && sync.is_none() {
        // The last job wrote nothing: an empty durable commit carries the batch's writes.
        sync = Some(
            db.begin_write()
                .map_err(StoreError::from)
                .and_then(|tx| tx.commit().map_err(StoreError::from)),
        );
    }
    match sync {
        Some(Err(e)) => {
            tracing::error!(error = %e, writes = waiting.len(), "store sync failed");
            let e = Shared(Arc::new(e));
            for answer in waiting {
                answer(Err(StoreError::Backend(Box::new(e.clone()))));
            }
        }
        synced => {
            if synced.is_some() {
                // Counted before anyone hears back, so a caller sees its own commit counted.
                counts.syncs.fetch_add(1, Ordering::Relaxed);
            }
            for answer in waiting {
                answer(Ok(()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RedbStore;
    use redb::{ReadableDatabase, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("writer_test");

    fn put(tx: &WriteTransaction, k: u64) -> Result<(), StoreError> {
        tx.open_table(T)?.insert(k, k)?;
        Ok(())
    }

    fn keys(db: &Database) -> Vec<u64> {
        let tx = db.begin_read().expect("read");
        let Ok(table) = tx.open_table(T) else {
            return Vec::new();
        };
        use redb::ReadableTable;
        table
            .iter()
            .expect("iter")
            .map(|e| e.expect("entry").0.value())
            .collect()
    }

    impl Writer {
        fn syncs(&self) -> u64 {
            self.counts.syncs.load(Ordering::Relaxed)
        }

        /// Occupy the writer until the returned sender is dropped, so what is queued meanwhile
        /// forms one batch.
        fn hold(&self) -> mpsc::Sender<()> {
            let (started, running) = mpsc::channel();
            let (release, gate) = mpsc::channel::<()>();
            let _held = self
                .enqueue(move |_tx: &WriteTransaction| {
                    started.send(()).expect("started");
                    let _ = gate.recv();
                    Ok(((), Changed::No))
                })
                .expect("queued");
            running.recv().expect("the writer took the hold");
            release
        }
    }

    #[tokio::test]
    async fn fifty_concurrent_writes_all_land_and_survive_a_reopen() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("db.redb");
        let store = RedbStore::open(&path).expect("open");
        let tasks: Vec<_> = (0..50u64)
            .map(|k| {
                let store = store.clone();
                tokio::spawn(async move { store.write(move |tx| put(tx, k)).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("write");
        }
        assert!(store.writer.syncs() <= 50);
        drop(store);
        let store = RedbStore::open(&path).expect("the writer let go of the file");
        assert_eq!(keys(&store.db), (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn one_batch_commits_the_good_writes_and_drops_the_bad_ones() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = RedbStore::open(&tmp.path().join("db.redb")).expect("open");
        let w = &store.writer;
        let before = w.syncs();
        let release = w.hold();
        let good = |k: u64| w.enqueue(move |tx| put(tx, k).map(|()| (k, Changed::Yes)));
        let first = good(1).expect("queued");
        let failing = w
            .enqueue(|tx| -> Result<((), Changed), StoreError> {
                put(tx, 100)?;
                Err(StoreError::Corrupt("refused".into()))
            })
            .expect("queued");
        let unchanged = w
            .enqueue(|tx| put(tx, 200).map(|()| ("saw", Changed::No)))
            .expect("queued");
        let panicking = w
            .enqueue(|tx| -> Result<((), Changed), StoreError> {
                put(tx, 300)?;
                panic!("a bug in one write");
            })
            .expect("queued");
        let second = good(2).expect("queued");
        drop(release);

        assert_eq!(
            first
                .await
                .expect("answered")
                .expect("no panic")
                .expect("ok"),
            1
        );
        assert!(matches!(
            failing.await.expect("answered").expect("no panic"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            unchanged
                .await
                .expect("answered")
                .expect("no panic")
                .expect("ok"),
            "saw"
        );
        assert!(
            panicking.await.expect("answered").is_err(),
            "the panic comes back"
        );
        assert_eq!(
            second
                .await
                .expect("answered")
                .expect("no panic")
                .expect("ok"),
            2
        );
        assert_eq!(keys(&store.db), [1, 2], "only the good writes landed");
        assert_eq!(w.syncs() - before, 1, "one fsync for the whole batch");

        // The writer survived the panic.
        store.write(|tx| put(tx, 3)).await.expect("write");
        assert_eq!(keys(&store.db), [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_panic_is_re_raised_at_its_caller() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = RedbStore::open(&tmp.path().join("db.redb")).expect("open");
        let s = store.clone();
        let err = tokio::spawn(async move {
            s.write(|_tx| -> Result<(), StoreError> { panic!("a bug in one write") })
                .await
        })
        .await
        .expect_err("panicked");
        assert!(err.is_panic());
        store.write(|tx| put(tx, 1)).await.expect("write");
    }

    #[tokio::test]
    async fn batches_are_bounded_and_a_batch_that_wrote_nothing_costs_no_sync() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = RedbStore::open(&tmp.path().join("db.redb")).expect("open");
        let w = &store.writer;
        let before = w.syncs();
        let release = w.hold();
        let queued: Vec<_> = (0..100u64)
            .map(|k| {
                w.enqueue(move |tx| put(tx, k).map(|()| ((), Changed::Yes)))
                    .expect("queued")
            })
            .collect();
        drop(release);
        for q in queued {
            q.await.expect("answered").expect("no panic").expect("ok");
        }
        // The hold ran alone and wrote nothing; then 64 and 36.
        assert_eq!(w.syncs() - before, 2);
        assert_eq!(keys(&store.db).len(), 100);

        let release = w.hold();
        let refused = w
            .enqueue(|tx| put(tx, 500).map(|()| ((), Changed::No)))
            .expect("queued");
        drop(release);
        refused
            .await
            .expect("answered")
            .expect("no panic")
            .expect("ok");
        assert_eq!(w.syncs() - before, 2);
        assert!(!keys(&store.db).contains(&500));
    }
}

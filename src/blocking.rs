//! The one way blocking work (scrypt, redb reads) leaves the async workers: tokio's blocking
//! pool, with panics re-raised rather than turned into errors that would hide a bug, and the
//! caller's tracing span carried along so that lines logged there still name their request.
//! redb writes have a thread of their own, which does the same (`store/writer.rs`).

/// The blocking task was cancelled because the runtime is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// Run `work` on the blocking pool and wait for it.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Cancelled> {
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(work)).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Cancelled),
    }
}

//! Readiness: whether this server should get traffic.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::Error;
use crate::service::state::AppState;

/// Ready when not shutting down and the store answers a read. Either failure is 503, so load
/// balancers stop sending without treating it as a server fault.
pub async fn ready(state: &AppState) -> Result<(), Error> {
    let busy = Error::Overloaded {
        retry_after: Duration::from_secs(1),
    };
    if state.draining.load(Ordering::Relaxed) {
        return Err(busy);
    }
    // A database that does not answer soon counts as down: probes have short timeouts.
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "readiness check: the store does not answer");
            return Err(busy);
        }
        Err(_) => {
            tracing::error!("readiness check: the store did not answer within 2 s");
            return Err(busy);
        }
    }
    Ok(())
}

/// The metrics text in `format`, with gauges read now.
pub async fn metrics(state: &AppState, format: crate::metrics::Format) -> Result<String, Error> {
    let (users, sessions, api_keys) = state.store.counts().await?;
    let mail_queued = state.store.queued_mail_count().await?;
    let db_bytes = state.store.size_bytes(&state.config.db_path()).await;
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let tracked = u64::try_from(state.rate_limiter.tracked()).unwrap_or(u64::MAX);
    let now = crate::metrics::Snapshot {
        hash_queue: state.hasher.queue_depth(),
        sessions: as_i64(sessions),
        api_keys: as_i64(api_keys),
        users: as_i64(users),
        db_bytes: as_i64(db_bytes),
        rate_limit_tracked: as_i64(tracked),
        token_cache_entries: as_i64(u64::try_from(state.token_cache.held()).unwrap_or(u64::MAX)),
        mail_queued: as_i64(mail_queued),
    };
    Ok(state.metrics.render_as(now, format))
}

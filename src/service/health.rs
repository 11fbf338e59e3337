//! Readiness: whether this server should get traffic.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::Error;
use crate::state::AppState;

/// Ready when not shutting down and the store answers a read. Either failure is 503, so load
/// balancers stop sending without treating it as a server fault.
pub async fn ready(state: &AppState) -> Result<(), Error> {
    let busy = Error::Overloaded {
        retry_after: Duration::from_secs(1),
    };
    if state.draining.load(Ordering::Relaxed) {
        return Err(busy);
    }
    if let Err(e) = state.store.schema_version().await {
        tracing::error!(error = %e, "readiness check: the store does not answer");
        return Err(busy);
    }
    Ok(())
}

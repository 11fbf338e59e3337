//! The signal that stops the server: SIGTERM (systemd, orchestrators) or SIGINT (Ctrl-C).

use std::future::Future;

/// Install the SIGTERM and SIGINT handlers now, and return a future that resolves on either.
/// Installing before the server announces itself means a signal sent right after the
/// announcement is never lost to the default action. Must be called inside the runtime.
pub fn install() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

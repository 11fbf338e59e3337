//! The server: `App::build` opens the store and loads keys; `App::serve` runs the accept loop
//! (hyper http1 with a timer, a connection cap, graceful shutdown) until told to stop.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::password::PasswordHasher;
use crate::error::Error;
use crate::http::connections::{self, Lifetime, PerAddress, Slot};
use crate::service::state::AppState;
use crate::store::{Store, StoreError};

/// Why the server could not start.
#[derive(Debug)]
pub enum StartupError {
    /// The config file is invalid.
    Config(crate::config::ConfigError),
    /// The database could not be opened or initialised.
    Store(StoreError),
    /// Anything else (binding the listener, ...).
    Other(String),
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartupError::Config(e) => write!(f, "{e}"),
            StartupError::Store(e) => write!(f, "cannot open the database: {e}"),
            StartupError::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for StartupError {}

impl From<StoreError> for StartupError {
    fn from(e: StoreError) -> Self {
        StartupError::Store(e)
    }
}

impl From<crate::crypto::password::HashError> for StartupError {
    fn from(e: crate::crypto::password::HashError) -> Self {
        StartupError::Other(e.to_string())
    }
}

impl From<Error> for StartupError {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(s) => StartupError::Store(s),
            other => StartupError::Other(other.to_string()),
        }
    }
}

/// A built server, ready to serve a listener.
#[derive(Debug)]
pub struct App {
    state: Arc<AppState>,
}

impl App {
    /// Build on the real clock.
    pub async fn build(config: Config) -> Result<App, StartupError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Build with an injected clock (tests control expiry with it).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<App, StartupError> {
        // The data dir holds the admin socket and mail files on every backend, and the redb file
        // on the default one.
        ensure_private_dir(&config.data_dir)?;
        let existed = config.db_path().exists();
        let caches = (config.cache.sessions, config.cache.keys);
        let store = Store::open_configured(&config.store, &config.db_path(), caches).await?;
        if store.is_redb() && !existed {
            tracing::info!(path = %config.db_path().display(), "created the database");
        }
        let stored = store
            .signing_keys_or_create(clock.now(), config.key_keep_for())
            .await?;
        let keys = crate::service::state::keyring(stored, config.key_keep_for())?;
        let p = &config.passwords;
        let hasher = PasswordHasher::new(
            p.scrypt_log_n,
            p.scrypt_r,
            p.scrypt_p,
            p.max_concurrent_hashes,
            p.queue_timeout,
        )
        .await?;
        let mailer = crate::service::mail::Mailer::new(&config).map_err(StartupError::Other)?;
        if let Some(dir) = mailer.file_dir() {
            tracing::warn!(
                dir = %dir.display(),
                "email.transport is \"file\": mail is written to files there, not delivered"
            );
        } else if !mailer.enabled() {
            tracing::info!("email.transport is \"none\": no mail is sent");
        }
        let limits = crate::service::rate_limit::RateLimiter::new(&config.rate_limits);
        let config_tokens_cache = config.cache.tokens;
        let state = AppState {
            config,
            store,
            keys: std::sync::RwLock::new(Arc::new(keys)),
            hasher,
            clock,
            refresh: Default::default(),
            draining: Default::default(),
            stopping: Default::default(),
            key_usage: Default::default(),
            rate_limiter: limits,
            metrics: Default::default(),
            rotation: Default::default(),
            keys_reloaded_at: Default::default(),
            account_lock: Default::default(),
            token_cache: crate::service::token_cache::TokenCache::new(config_tokens_cache),
            mailer,
        };
        Ok(App {
            state: Arc::new(state),
        })
    }

    /// Shared state; tests and benches use it to drive services directly.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Accept connections on `listener` until `shutdown` resolves, then stop accepting, let
    /// in-flight requests finish for up to `limits.shutdown_grace`, and return.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let gate = Gate::new(&self.state.config).await;
        let http = http_builder(&self.state.config.limits);
        let graceful = GracefulShutdown::new();
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        let flusher = tokio::spawn(flush_key_usage_periodically(self.state.clone()));
        // On a shared database another instance may rotate the signing key: pick it up well
        // within the JWKS max-age (60 s), so both sign with it and verify what the other signed.
        let key_reloader = (!self.state.store.is_redb()).then(|| {
            tokio::spawn(crate::service::state::every(
                self.state.clone(),
                Duration::from_secs(20),
                |state| async move {
                    if let Err(e) = state.reload_keys(false).await {
                        tracing::error!(error = %e, "could not reload the signing keys");
                    }
                },
            ))
        });
        let pruner = tokio::spawn(crate::service::audit::prune_periodically(
            self.state.clone(),
        ));
        // With mail off nothing is sent; whatever is queued waits for a transport.
        let mailer = self
            .state
            .mailer
            .enabled()
            .then(|| tokio::spawn(crate::service::mail::deliver_forever(self.state.clone())));
        let admin_path = crate::admin::socket_path(&self.state.config);
        let admin = tokio::spawn(crate::admin::server::serve(
            self.state.clone(),
            admin_path.clone(),
        ));
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            if let Some(slots) = gate.admit(&stream, peer) {
                let conn = serve_connection(&self.state, &http, stream, peer);
                let conn = graceful.watch(conn);
                connections.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(slots);
                });
            }
            // Reap the finished ones as we go, so the set stays as small as what is open.
            while connections.try_join_next().is_some() {}
        }
        self.state.draining.store(true, Ordering::Relaxed);
        drop(listener);
        self.drain(graceful).await;
        // Every connection task gone (those past the grace aborted), so none still holds the
        // state, and through it the database file, once `serve` returns.
        connections.shutdown().await;
        // The flusher and the mail worker stop between two pieces of work when told; one still
        // busy after the grace (a relay that does not answer) is cut off: an unsent message
        // stays queued, and one the relay took just before goes again (at least once). Each is
        // awaited, so none still holds the state, and through it the database file, once
        // `serve` returns.
        self.state.stopping.notify_waiters();
        let grace = self.state.config.limits.shutdown_grace;
        let mut tasks = vec![flusher, pruner];
        tasks.extend(key_reloader);
        tasks.extend(mailer);
        for mut task in tasks {
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        admin.abort();
        let _ = admin.await;
        let _ = std::fs::remove_file(&admin_path);
        if let Err(e) = self.state.key_usage.flush(&self.state.store).await {
            tracing::error!(error = %e, "could not record API key usage at shutdown");
        }
    }

    /// Let in-flight requests finish, for up to `limits.shutdown_grace`.
    async fn drain(&self, graceful: GracefulShutdown) {
        tracing::info!("shutting down: no longer accepting connections");
        let grace = self.state.config.limits.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "shutdown grace elapsed with requests still in flight"
            );
        }
    }
}

/// Create `dir` (mode 0700) if it is missing.
fn ensure_private_dir(dir: &std::path::Path) -> Result<(), StartupError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StartupError::Other(format!("cannot create data dir {}: {e}", dir.display())))
}

/// hyper's connection settings. hyper runs the header timer from the moment it waits for a
/// request, so it also closes idle keep-alive connections: the idle limit is the smaller of the
/// two settings.
fn http_builder(limits: &crate::config::LimitsConfig) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout.min(limits.idle_timeout))
        .keep_alive(true)
        .max_buf_size(limits.max_header_bytes);
    http
}

/// One connection: every request through `http::serve_request`, and `Connection: close` on the
/// last one its lifetime allows.
fn serve_connection(
    state: &Arc<AppState>,
    http: &http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> + Send + 'static {
    let state = state.clone();
    let lifetime = Arc::new(Lifetime::new(&state.config));
    let service = service_fn(move |req| {
        let state = state.clone();
        let lifetime = lifetime.clone();
        async move {
            let mut resp = crate::http::serve_request(state, req, peer).await;
            if lifetime.last_request() {
                resp.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, Infallible>(resp)
        }
    });
    http.serve_connection(TokioIo::new(stream), service)
}

/// Who gets a connection slot: the global cap and the per-client cap, each refused at once with
/// a complete response rather than left waiting in the backlog.
struct Gate {
    slots: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    full: Vec<u8>,
    too_many: Vec<u8>,
}

impl Gate {
    async fn new(config: &Config) -> Self {
        let wait = Duration::from_secs(1);
        Gate {
            slots: Arc::new(Semaphore::new(config.limits.max_connections)),
            per_address: PerAddress::new(config),
            full: connections::refusal(&Error::Overloaded { retry_after: wait }).await,
            too_many: connections::refusal(&Error::RateLimited { retry_after: wait }).await,
        }
    }

    /// The slots a new connection holds until it ends, or `None` once it has been refused (the
    /// socket's send buffer is empty, so the refusal's write does not block).
    fn admit(&self, stream: &TcpStream, peer: SocketAddr) -> Option<(OwnedSemaphorePermit, Slot)> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(client = %peer.ip(), limit = "max_connections", "connection refused");
            let _ = stream.try_write(&self.full);
            return None;
        };
        let Some(address_slot) = self.per_address.admit(peer.ip()) else {
            tracing::info!(client = %peer.ip(), limit = "max_connections_per_address", "connection refused");
            let _ = stream.try_write(&self.too_many);
            return None;
        };
        Some((slot, address_slot))
    }
}

async fn flush_key_usage_periodically(state: Arc<AppState>) {
    let period = state.config.api_keys.last_used_flush;
    crate::service::state::every(state, period, |state| async move {
        if let Err(e) = state.key_usage.flush(&state.store).await {
            tracing::error!(error = %e, "could not record API key usage");
        }
    })
    .await;
}

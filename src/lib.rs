//! cloudheed-auth: a self-hosted authentication server in one binary, with its data in one redb
//! file and its access tokens signed with Ed25519.
//!
//! # Layout
//!
//! A request flows listener -> router -> handler -> service -> store, and never back up.
//!
//! - [`app`]: build the state, run the accept loop, shut down gracefully.
//! - [`http`]: the edge. Routing, bearer extraction, JSON bodies, wire types, error rendering,
//!   and one handler module per resource.
//! - [`service`]: use cases (register, login, refresh, sessions, limits). No HTTP types.
//! - [`domain`]: validated values, models and the rules that change them (two-factor state,
//!   refresh lineage, operator changes, client networks). No I/O.
//! - [`crypto`]: scrypt on a bounded pool, EdDSA JWS, signing keys, randomness.
//! - [`store`]: the only code that knows redb; use-case operations, each one transaction, in
//!   domain types.
//! - [`admin`]: the operator's side: a socket server beside the app, and the CLI's client.
//! - [`config`], [`clock`], [`telemetry`], [`shutdown`], [`cli`]: the process around it.
//!
//! `docs/architecture.md` walks the one request path and says where a new endpoint, rule,
//! table or backend goes.

pub mod admin;
pub mod app;
pub mod blocking;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod secret;
pub mod service;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod telemetry;

pub use app::{App, StartupError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use error::Error;

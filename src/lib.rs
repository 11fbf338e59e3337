//! cloudheed-auth: a self-hosted authentication server in one binary, with its data in one redb
//! file (or a PostgreSQL database several instances share) and its access tokens signed with
//! Ed25519.
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
//! - [`store`]: the only code that knows redb or PostgreSQL; use-case operations, each one
//!   transaction, in domain types, the same on both backends.
//! - [`admin`]: the operator's side: a socket server beside the app, and the CLI's client.
//! - [`config`], [`clock`], [`telemetry`], [`shutdown`], [`cli`]: the process around it.
//!
//! `docs/architecture.md` walks the one request path and says where a new endpoint, rule,
//! table or backend goes.

pub mod admin;
pub(crate) mod app;
pub(crate) mod blocking;
pub(crate) mod bounded;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod crypto;
pub(crate) mod domain;
pub(crate) mod error;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod html;
pub(crate) mod http;
pub(crate) mod metrics;
pub mod notify;
pub(crate) mod secret;
pub(crate) mod service;
pub mod shutdown;
pub(crate) mod store;
pub mod telemetry;

pub use app::{App, StartupError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use error::Error;
pub use service::state::AppState;
pub use store::StoreError;

/// The internals that benches and black-box tests drive directly; not an API.
#[doc(hidden)]
pub mod testing {
    /// Crypto primitives.
    pub mod crypto {
        pub use crate::crypto::{api_key, jwt, keys, password, random};
    }
    /// Domain values and models.
    pub mod domain {
        pub use crate::domain::{audit, models, password, types};
    }
    /// Use cases.
    pub mod service {
        pub use crate::service::{accounts, api_keys, credentials, rate_limit, token_cache};
    }
    /// The store's use-case API.
    pub mod store {
        pub use crate::store::{
            check_backup, CreateOutcome, NewSession, NewUser, Rotation, Store, Tamper,
        };
    }
    pub use crate::http::router;
    /// The mail outbox: queue a message as a use case would.
    pub mod mail {
        pub use crate::domain::mail::OutgoingMail;
        pub use crate::service::mail::queue;
    }
    /// Secret strings.
    pub mod secret {
        pub use crate::secret::Secret;
    }
}

//! Use cases: take `&AppState` and domain inputs, return domain outputs or `Error`. Knows nothing
//! of hyper; talks to the store only through its use-case operations.

pub mod accounts;
pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod credentials;
pub mod email;
pub mod guesses;
pub mod health;
pub mod key_usage;
pub mod lifecycle;
pub mod limits;
pub mod lockout;
pub mod mail;
pub mod notices;
pub mod rate_limit;
pub mod sessions;
pub mod state;
pub mod token_cache;
pub mod tokens;
pub mod two_factor;

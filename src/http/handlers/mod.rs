//! Handlers, one module per resource: decode the request, parse into domain types, call the
//! service, encode the response. Rules live in `service`.

pub mod accounts;
pub mod activity;
pub mod api_keys;
pub mod health;
pub mod sessions;
pub mod two_factor;
pub mod verify;

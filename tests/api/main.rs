//! Black-box tests: each starts its own server on 127.0.0.1:0 with its own temp data dir and a
//! low scrypt cost, and speaks HTTP to it. `process` runs the built binary.

mod helpers;

mod accounts;
mod api_keys;
mod audit;
mod browser;
mod caches;
mod contract;
mod edge;
mod hostile;
mod instances;
mod lifecycle;
mod limits;
mod mail;
mod metrics_format;
mod operations;
mod pages;
mod postgres;
mod process;
mod proxies;
mod restore_race;
mod sessions;
mod tokens;
mod two_factor;
mod verify;

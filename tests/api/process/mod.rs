//! The built binary, run as a process. `support` launches it and talks to it (`BIN`,
//! `configured`, `start`, `start_with`, `Server`, `http`, `try_http`, `enable_totp`); each other
//! module tests one subject.

mod admin;
mod audit;
mod cli;
mod durability;
mod failover;
mod lifecycle;
mod load;
mod logs;
mod migrate;
mod packaging;
mod support;

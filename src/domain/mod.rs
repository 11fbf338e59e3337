//! Domain types: parsed, validated values and the models services work with. No HTTP, no redb.

pub mod account;
pub mod audit;
pub mod duration;
pub mod lineage;
pub mod mail;
pub mod models;
pub mod net;
pub mod password;
pub mod types;

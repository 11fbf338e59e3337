//! Cryptography: passwords (scrypt), access tokens (EdDSA JWS), signing keys and randomness.
//! Pure functions of their inputs; nothing here knows about HTTP or redb.

pub mod jwt;
pub mod keys;
pub mod password;
pub mod random;

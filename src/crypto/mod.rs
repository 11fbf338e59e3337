//! Cryptography: passwords (scrypt), access tokens (EdDSA JWS), API keys, signing keys and randomness.
//! Pure functions of their inputs; nothing here knows about HTTP or redb.

pub mod api_key;
pub mod backup_codes;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod random;
pub mod seal;
pub mod totp;

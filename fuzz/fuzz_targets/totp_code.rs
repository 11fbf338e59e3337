//! Fuzz target: `cloudheed_auth::fuzz::totp_code` must return for any input, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudheed_auth::fuzz::totp_code(data));

//! Replays every saved fuzz input (fuzz/regressions/<target>/*) through the fuzz entry points,
//! so an input that once found a bug, or that widened coverage, is checked on every test run.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        run(&data);
        count += 1;
    }
    assert!(count > 0, "no saved inputs for {target}");
}

#[test]
fn request_bodies() {
    replay("request_body", cloudheed_auth::fuzz::request_body);
}

#[test]
fn bearer_credentials() {
    replay("bearer", cloudheed_auth::fuzz::bearer);
}

#[test]
fn durations() {
    replay("duration", cloudheed_auth::fuzz::duration);
}

#[test]
fn totp_codes() {
    replay("totp_code", cloudheed_auth::fuzz::totp_code);
}

#[test]
fn routes() {
    replay("router", cloudheed_auth::fuzz::router);
}

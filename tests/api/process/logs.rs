//! What the log says and never says: no secrets, and one JSON object per line with the request
//! fields.

use serde_json::{json, Value};

use super::support::{configured, enable_totp, http, start, start_with, Server};

#[test]
fn secrets_never_reach_the_log_and_data_survives_a_restart() {
    let (dir, args) = configured("[passwords]\nscrypt_log_n = 10\n");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let envs = [("RUST_LOG", "trace")];
    let password = "log-canary-password-7731";
    let server = start(dir.path(), &args, &envs);
    let (status, reg) = http(
        &server.addr,
        "POST",
        "/v1/auth/register",
        None,
        Some(&json!({"email": "log@example.com", "password": password, "name": "L"})),
    );
    assert_eq!(status, 201);
    let token = reg["token"].as_str().expect("token").to_string();
    let refresh = reg["refresh_token"].as_str().expect("refresh").to_string();
    let (_, wrong) = http(
        &server.addr,
        "POST",
        "/v1/auth/login",
        None,
        Some(&json!({"email": "log@example.com", "password": "wrong-canary-pw-1"})),
    );
    assert_eq!(wrong["message_code"], "invalid_credentials");
    let (status, rotated) = http(
        &server.addr,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(&json!({"refresh_token": refresh})),
    );
    assert_eq!(status, 200);
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/me", Some(&token), None).0,
        200
    );
    let (code, log) = server.terminate();
    assert_eq!(code, 0);
    assert!(
        log.contains("login failed") || log.contains("request"),
        "logging is on: {log}"
    );
    let rotated_refresh = rotated["refresh_token"].as_str().expect("rt");
    for secret in [
        password,
        "wrong-canary-pw-1",
        &token,
        &refresh,
        rotated_refresh,
        "$scrypt$",
    ] {
        assert!(!log.contains(secret), "secret in log: {secret}");
    }
    // Restart on the same data: the account and the token issued before still work.
    let server = start(dir.path(), &args, &[]);
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/me", Some(&token), None).0,
        200
    );
    let (status, _) = http(
        &server.addr,
        "POST",
        "/v1/auth/login",
        None,
        Some(&json!({"email": "log@example.com", "password": password})),
    );
    assert_eq!(status, 200);
    assert_eq!(server.terminate().0, 0);
}

#[test]
fn totp_secrets_and_backup_codes_never_reach_the_log() {
    let (dir, args) = configured("[passwords]\nscrypt_log_n = 10\n");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(dir.path(), &args, &[("RUST_LOG", "trace")]);
    let body =
        json!({"email": "totplog@example.com", "password": "totp-log-password", "name": "T"});
    let (_, reg) = http(&server.addr, "POST", "/v1/auth/register", None, Some(&body));
    let token = reg["token"].as_str().expect("token").to_string();
    let (secret, enabled) = enable_totp(&server.addr, &token);
    let backup = enabled["backup_codes"][0]
        .as_str()
        .expect("code")
        .to_string();
    let login = json!({"email": "totplog@example.com", "password": "totp-log-password", "totp_code": backup});
    assert_eq!(
        http(&server.addr, "POST", "/v1/auth/login", None, Some(&login)).0,
        200
    );
    let (code_exit, log) = server.terminate();
    assert_eq!(code_exit, 0);
    // (The 6-digit code is left out: such digits occur in timestamps and latencies.)
    for s in [&secret, &backup, &backup.replace('-', "")] {
        assert!(!log.contains(s.as_str()), "secret in log: {s}");
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let (dir, args) = configured("log_format = \"json\"\n[passwords]\nscrypt_log_n = 10\n");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start_json(dir.path(), &args);
    let body = json!({"email": "json@example.com", "password": "json-log-password", "name": "J"});
    let (_, reg) = http(&server.addr, "POST", "/v1/auth/register", None, Some(&body));
    let token = reg["token"].as_str().expect("token").to_string();
    let user_id = reg["user"]["id"].as_str().expect("id").to_string();
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/me", Some(&token), None).0,
        200
    );
    let wrong = json!({"email": "json@example.com", "password": "not-the-password"});
    assert_eq!(
        http(&server.addr, "POST", "/v1/auth/login", None, Some(&wrong)).0,
        401
    );
    // Five more wrong passwords lock the account: the 429's line names the limit.
    let statuses: Vec<u16> = (0..5)
        .map(|_| http(&server.addr, "POST", "/v1/auth/login", None, Some(&wrong)).0)
        .collect();
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let (code, log) = server.terminate();
    assert_eq!(code, 0);
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let me = lines
        .iter()
        .find(|l| l["message"] == "request" && l["route"] == "me")
        .expect("a request line for /me");
    for field in [
        "timestamp",
        "level",
        "request_id",
        "route",
        "status",
        "latency_us",
    ] {
        assert!(!me[field].is_null(), "{field} in {me}");
    }
    assert_eq!(me["status"], 200);
    assert_eq!(me["user_id"], user_id.as_str());
    assert!(!log.contains(&token) && !log.contains("json-log-password"));
    // A line logged inside a service names its request, the user and the client address.
    let failed = lines
        .iter()
        .find(|l| l["message"] == "login failed")
        .expect("a login-failed line");
    let login = lines
        .iter()
        .find(|l| l["message"] == "request" && l["route"] == "login")
        .expect("the login's request line");
    assert_eq!(
        failed["span"]["request_id"], login["request_id"],
        "{failed}"
    );
    assert_eq!(failed["user_id"], user_id.as_str());
    assert_eq!(failed["client"], "127.0.0.1");
    assert_eq!(failed["reason"], "invalid_credentials");
    let limited = lines
        .iter()
        .find(|l| l["message"] == "rate limited")
        .expect("a rate-limited line");
    assert_eq!(limited["limit"], "account_lock", "{limited}");
    assert_eq!(limited["user_id"], user_id.as_str());
    assert!(limited["span"]["request_id"].is_string());
    // Startup says what it runs on and what it made.
    let said = |m: &str| lines.iter().find(|l| l["message"] == m).cloned();
    assert!(said("created the database").is_some(), "{log}");
    assert!(said("created a signing key").is_some_and(|l| l["kid"].is_string()));
    let listening = said("listening").expect("listening");
    for field in ["addr", "version", "data_dir", "config"] {
        assert!(listening[field].is_string(), "{field} in {listening}");
    }
}

/// `start` for JSON logs: the announced address is in the `addr` field of a JSON line, and every
/// line must be JSON.
fn start_json(cwd: &std::path::Path, args: &[&str]) -> Server {
    start_with(cwd, args, &[], |line| {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        v["addr"].as_str().map(str::to_string)
    })
}

//! The admin CLI against a running and a stopped server: users, signing keys, backup and restore.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};

use super::support::{admin, admin_json, configured, enable_totp, http, start};

#[test]
fn the_admin_cli_manages_a_running_server() {
    let (dir, args) = configured("[passwords]\nscrypt_log_n = 10\n");
    let cfg = args[1].clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(dir.path(), &args, &[]);
    let reg_body =
        json!({"email": "ops@example.com", "password": "ops-password-123", "name": "Ops"});
    let body = json!({"email": "ops@example.com", "password": "ops-password-123"});
    let (_, reg) = http(
        &server.addr,
        "POST",
        "/v1/auth/register",
        None,
        Some(&reg_body),
    );
    let token = reg["token"].as_str().expect("token").to_string();
    let key_body = json!({"name": "k", "scopes": ["databases:read"]});
    let (_, key) = http(
        &server.addr,
        "POST",
        "/v1/auth/api-keys",
        Some(&token),
        Some(&key_body),
    );
    let key = key["api_key"].as_str().expect("key").to_string();

    let users = admin_json(&cfg, &["user", "list"]);
    assert_eq!(users[0]["email"], "ops@example.com");
    let (code, table, _) = admin(&cfg, &["user", "list"]);
    assert_eq!(code, 0);
    assert!(
        table.starts_with("CREATED_AT") && table.contains("ops@example.com"),
        "{table}"
    );
    let shown = admin_json(&cfg, &["user", "show", "OPS@example.com"]);
    assert_eq!(
        (shown["sessions"].as_u64(), shown["api_keys"].as_u64()),
        (Some(1), Some(1))
    );

    // Disable: tokens, keys and logins are refused at once; a wrong password learns nothing.
    assert_eq!(
        admin_json(&cfg, &["user", "disable", "ops@example.com"])["disabled"],
        true
    );
    let (status, v) = http(&server.addr, "GET", "/v1/auth/me", Some(&token), None);
    assert_eq!(
        (status, v["message_code"].as_str()),
        (403, Some("account_disabled"))
    );
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/verify", Some(&key), None).0,
        403
    );
    let (status, _) = http(&server.addr, "POST", "/v1/auth/login", None, Some(&body));
    assert_eq!(status, 403);
    let wrong = json!({"email": "ops@example.com", "password": "not-the-password"});
    assert_eq!(
        http(&server.addr, "POST", "/v1/auth/login", None, Some(&wrong)).0,
        401
    );
    let refresh = json!({"refresh_token": reg["refresh_token"]});
    assert_eq!(
        http(
            &server.addr,
            "POST",
            "/v1/auth/refresh",
            None,
            Some(&refresh)
        )
        .0,
        401,
        "its session ended"
    );
    // Enable: login and keys work again; ended sessions stay ended.
    assert_eq!(
        admin_json(&cfg, &["user", "enable", "ops@example.com"])["disabled"],
        false
    );
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/verify", Some(&key), None).0,
        200
    );
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/me", Some(&token), None).0,
        401
    );
    let (status, login) = http(&server.addr, "POST", "/v1/auth/login", None, Some(&body));
    assert_eq!(status, 200);
    let token = login["token"].as_str().expect("token").to_string();

    assert_eq!(
        admin_json(&cfg, &["user", "set-plan", "ops@example.com", "pro"])["plan"],
        "pro"
    );
    assert!(
        admin_json(&cfg, &["user", "verify-email", "ops@example.com"])["email_verified_at"]
            .is_string()
    );
    let (_, me) = http(&server.addr, "GET", "/v1/auth/me", Some(&token), None);
    assert_eq!(me["plan"], "pro");
    assert!(me["email_verified_at"].is_string());
    // reset-2fa on an account that has it: afterwards the password alone logs in.
    enable_totp(&server.addr, &token);
    let (status, v) = http(&server.addr, "POST", "/v1/auth/login", None, Some(&body));
    assert_eq!(
        (status, v["message_code"].as_str()),
        (401, Some("totp_required"))
    );
    assert_eq!(
        admin_json(&cfg, &["user", "reset-2fa", "ops@example.com"])["two_factor_enabled"],
        false
    );
    assert_eq!(
        http(&server.addr, "POST", "/v1/auth/login", None, Some(&body)).0,
        200,
        "no code needed"
    );

    // Rotation: new tokens carry the new kid; the old token still verifies; the JWKS has both.
    let old_kid = jwt_kid(&token);
    let keys = admin_json(&cfg, &["keys", "rotate"]);
    let new_kid = keys
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["signing"] == true)
        .expect("signing")["kid"]
        .as_str()
        .expect("kid")
        .to_string();
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/me", Some(&token), None).0,
        200,
        "old token still valid"
    );
    let (_, fresh) = http(&server.addr, "POST", "/v1/auth/login", None, Some(&body));
    assert_eq!(jwt_kid(fresh["token"].as_str().expect("token")), new_kid);
    let (_, jwks) = http(&server.addr, "GET", "/.well-known/jwks.json", None, None);
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    assert_eq!(
        admin_json(&cfg, &["keys", "list"]).as_array().map(Vec::len),
        Some(2)
    );

    // After a restart both keys load again, and the old token still verifies.
    assert_eq!(server.terminate().0, 0);
    let server = start(dir.path(), &args, &[]);
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/me", Some(&token), None).0,
        200,
        "old token after restart"
    );
    let (_, jwks) = http(&server.addr, "GET", "/.well-known/jwks.json", None, None);
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
    let (code, _, err) = admin(&cfg, &["user", "show", "nobody@example.com"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "cloudheed-auth: no account with email nobody@example.com"
    );
    let socket = dir.path().join("data").join("admin.sock");
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(server.terminate().0, 0);
    assert!(!socket.exists(), "the socket is removed at shutdown");
    // Stopped: the CLI opens the database itself.
    assert_eq!(admin_json(&cfg, &["user", "list"])[0]["plan"], "pro");
    assert_eq!(
        admin_json(&cfg, &["keys", "rotate"])
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let server = start(dir.path(), &args, &[]);
    let (_, fresh) = http(&server.addr, "POST", "/v1/auth/login", None, Some(&body));
    let (_, jwks) = http(&server.addr, "GET", "/.well-known/jwks.json", None, None);
    assert_eq!(
        jwks["keys"][0]["kid"].as_str(),
        Some(jwt_kid(fresh["token"].as_str().expect("token")).as_str())
    );
    assert_eq!(server.terminate().0, 0);
}

fn jwt_kid(token: &str) -> String {
    let header = token.split('.').next().expect("header");
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(header.as_bytes())
        .expect("b64");
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    v["kid"].as_str().expect("kid").to_string()
}

#[test]
fn backup_while_serving_then_restore_into_an_empty_data_dir() {
    let (dir, args) = configured("[passwords]\nscrypt_log_n = 10\n");
    let cfg = args[1].clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(dir.path(), &args, &[]);
    let reg_body = json!({"email": "bk@example.com", "password": "backup-password-1", "name": "B"});
    let body = json!({"email": "bk@example.com", "password": "backup-password-1"});
    let (_, reg) = http(
        &server.addr,
        "POST",
        "/v1/auth/register",
        None,
        Some(&reg_body),
    );
    let token = reg["token"].as_str().expect("token").to_string();
    let refresh = reg["refresh_token"].as_str().expect("refresh").to_string();
    let (_, key) = http(
        &server.addr,
        "POST",
        "/v1/auth/api-keys",
        Some(&token),
        Some(&json!({"name": "k", "scopes": ["databases:read"]})),
    );
    let key = key["api_key"].as_str().expect("key").to_string();
    let out = dir.path().join("snapshot.redb");
    let (code, _, err) = admin(&cfg, &["backup", out.to_str().expect("path")]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = admin(&cfg, &["backup", out.to_str().expect("path")]);
    assert_eq!(code, 1, "never overwrites: {err}");
    let (code, _, err) = admin(&cfg, &["restore", out.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert!(err.contains("running"), "{err}");
    assert_eq!(server.terminate().0, 0);

    // A fresh place: restore, then serve from it.
    let (dir2, args2) = configured("[passwords]\nscrypt_log_n = 10\n");
    let cfg2 = args2[1].clone();
    let args2: Vec<&str> = args2.iter().map(String::as_str).collect();
    let (code, _, err) = admin(&cfg2, &["restore", out.to_str().expect("path")]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = admin(&cfg2, &["restore", out.to_str().expect("path")]);
    assert_eq!(code, 1, "a non-empty data dir needs --force: {err}");
    let (code, _, err) = admin(&cfg2, &["restore", "--force", out.to_str().expect("path")]);
    assert_eq!(code, 0, "{err}");
    let server = start(dir2.path(), &args2, &[]);
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/me", Some(&token), None).0,
        200,
        "session and signing key"
    );
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/verify", Some(&key), None).0,
        200,
        "API key"
    );
    let (status, _) = http(
        &server.addr,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(&json!({"refresh_token": refresh})),
    );
    assert_eq!(status, 200, "refresh token");
    assert_eq!(
        http(&server.addr, "POST", "/v1/auth/login", None, Some(&body)).0,
        200,
        "user"
    );
    assert_eq!(server.terminate().0, 0);
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").expect("write");
    let (dir4, args4) = configured("");
    let (code, _, err) = admin(&args4[1], &["restore", empty.to_str().expect("path")]);
    assert_eq!(code, 1, "an empty file is no backup: {err}");
    assert!(!dir4
        .path()
        .join("data")
        .join("cloudheed-auth.redb")
        .exists());
    let junk = dir.path().join("junk.redb");
    std::fs::write(&junk, b"not a database at all").expect("write");
    let (dir3, args3) = configured("");
    let (code, _, err) = admin(&args3[1], &["restore", junk.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert!(err.contains("not a usable backup"), "{err}");
    assert!(!dir3
        .path()
        .join("data")
        .join("cloudheed-auth.redb")
        .exists());
}

//! Export and import with the built binary: a serving instance's data moved into a fresh data
//! dir and into PostgreSQL, where every credential keeps working and the audit log still
//! verifies.

use serde_json::{json, Value};

use super::support::{admin, admin_json, configured, enable_totp, http, start};

const CONFIG: &str = "[passwords]\nscrypt_log_n = 10\n";

fn register(addr: &str, email: &str) -> Value {
    let body = json!({"email": email, "password": "moving-password-1", "name": "M"});
    let (status, v) = http(addr, "POST", "/v1/auth/register", None, Some(&body));
    assert_eq!(status, 201, "{v}");
    v
}

/// Import `out` into a fresh data dir configured with `target`, serve it, and check that every
/// credential of `an_export_imported_elsewhere_keeps_every_credential_working` came along; the
/// new data dir and its config path.
#[allow(clippy::too_many_arguments)]
fn import_and_check(
    target: &str,
    out: &std::path::Path,
    a_token: &str,
    key: &str,
    refresh: &str,
    b: &Value,
    backup_code: &str,
    reset: &str,
    before: &Value,
) -> (tempfile::TempDir, String) {
    let (dir2, args2) = configured(target);
    let cfg2 = args2[1].clone();
    let args2: Vec<&str> = args2.iter().map(String::as_str).collect();
    let imported = admin_json(&cfg2, &["import", out.to_str().expect("path")]);
    assert_eq!(imported["moved"]["users"], 2, "{imported}");
    assert_eq!(imported["moved"]["signing_keys"], 2);
    assert_eq!(imported["moved"]["api_keys"], 1);
    let (code, _, err) = admin(&cfg2, &["import", out.to_str().expect("path")]);
    assert_eq!(code, 1, "only into an empty database: {err}");
    assert!(err.contains("already holds"), "{err}");

    let server = start(dir2.path(), &args2, &[]);
    let addr = server.addr.clone();
    let (status, me) = http(&addr, "GET", "/v1/auth/me", Some(a_token), None);
    assert_eq!(status, 200, "an access token of the retired key: {me}");
    assert_eq!(me["two_factor_enabled"], true);
    let (status, _) = http(&addr, "GET", "/v1/auth/verify", Some(key), None);
    assert_eq!(status, 200, "the API key");
    let (status, _) = http(
        &addr,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(&json!({"refresh_token": refresh})),
    );
    assert_eq!(status, 200, "the rotated refresh token");
    let (status, _) = http(
        &addr,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(&json!({"refresh_token": b["refresh_token"]})),
    );
    assert_eq!(
        status, 401,
        "the lineage came along: the spent token is still spent"
    );
    let login = json!({"email": "mover-a@example.com", "password": "moving-password-1"});
    let (_, refused) = http(&addr, "POST", "/v1/auth/login", None, Some(&login));
    assert_eq!(
        refused["message_code"], "totp_required",
        "two-factor came along"
    );
    let login = json!({"email": "mover-a@example.com", "password": "moving-password-1", "totp_code": backup_code});
    assert_eq!(
        http(&addr, "POST", "/v1/auth/login", None, Some(&login)).0,
        200
    );
    let (status, _) = http(
        &addr,
        "POST",
        "/v1/auth/password/reset",
        None,
        Some(&json!({"token": reset, "password": "reset after the move 1"})),
    );
    assert_eq!(status, 200, "the pending reset link");
    let after = admin_json(&cfg2, &["audit", "verify"]);
    let count = |v: &Value| v["verified"].as_u64().expect("count");
    assert!(count(&after) > count(before), "{before} {after}");
    let restored = admin_json(&cfg2, &["audit", "list", "--type", "restored"]);
    assert_eq!(restored[0]["detail"]["kind"], "import", "{restored}");
    assert_eq!(server.terminate().0, 0);

    (dir2, cfg2)
}

#[test]
fn an_export_imported_elsewhere_keeps_every_credential_working() {
    let (dir, args) = configured(CONFIG);
    let cfg = args[1].clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(dir.path(), &args, &[]);
    let addr = server.addr.clone();
    // A user with two-factor on, one with a key, a rotated refresh token, a rotated signing key
    // (the access token below is signed by the retired one), a pending reset link.
    let a = register(&addr, "mover-a@example.com");
    let a_token = a["token"].as_str().expect("token").to_string();
    let (_, enabled) = enable_totp(&addr, &a_token);
    let backup_code = enabled["backup_codes"][0]
        .as_str()
        .expect("code")
        .to_string();
    let b = register(&addr, "mover-b@example.com");
    let b_token = b["token"].as_str().expect("token").to_string();
    let (status, key) = http(
        &addr,
        "POST",
        "/v1/auth/api-keys",
        Some(&b_token),
        Some(&json!({"name": "moved", "scopes": ["databases:read"]})),
    );
    assert_eq!(status, 201);
    let key = key["api_key"].as_str().expect("key").to_string();
    let (status, rotated) = http(
        &addr,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(&json!({"refresh_token": b["refresh_token"]})),
    );
    assert_eq!(status, 200);
    let refresh = rotated["refresh_token"].as_str().expect("rt").to_string();
    admin_json(&cfg, &["keys", "rotate"]);
    let link = admin_json(&cfg, &["user", "reset-password", "mover-b@example.com"]);
    let reset = link["reset_link"]
        .as_str()
        .expect("link")
        .split("token=")
        .nth(1)
        .expect("token")
        .to_string();
    let before = admin_json(&cfg, &["audit", "verify"]);

    let out = dir.path().join("moved.jsonl");
    let exported = admin_json(&cfg, &["export", out.to_str().expect("path")]);
    assert!(exported["bytes"].as_u64().expect("bytes") > 0, "{exported}");
    let text = std::fs::read_to_string(&out).expect("export");
    let header: Value = serde_json::from_str(text.lines().next().expect("line")).expect("json");
    assert_eq!(header["type"], "header");
    assert_eq!(
        (header["format"].as_str(), header["version"].as_u64()),
        (Some("cloudheed-auth-export"), Some(1))
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (code, _, err) = admin(&cfg, &["export", out.to_str().expect("path")]);
    assert_eq!(code, 1, "never overwrites: {err}");
    assert_eq!(server.terminate().0, 0);

    let (dir2, cfg2) = import_and_check(
        CONFIG,
        &out,
        &a_token,
        &key,
        &refresh,
        &b,
        &backup_code,
        &reset,
        &before,
    );
    // The same export moves the redb server into PostgreSQL, with every credential working.
    if let Some(pg) = crate::postgres::server() {
        let url = pg.new_schema();
        let target = format!("{CONFIG}[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
        let (_dir3, cfg3) = import_and_check(
            &target,
            &out,
            &a_token,
            &key,
            &refresh,
            &b,
            &backup_code,
            &reset,
            &before,
        );
        // And out again: a PostgreSQL export imports like any other.
        let again = dir.path().join("from-postgres.jsonl");
        admin_json(&cfg3, &["export", again.to_str().expect("path")]);
        let header = std::fs::read_to_string(&again).expect("read");
        assert!(header.starts_with("{\"type\":\"header\""), "{header}");
    }

    // A stopped server exports too, and a file that is no export is refused.
    let again = dir2.path().join("again.jsonl");
    admin_json(&cfg2, &["export", again.to_str().expect("path")]);
    assert!(
        std::fs::read_to_string(&again)
            .expect("read")
            .lines()
            .count()
            > 5
    );
    let junk = dir2.path().join("junk.jsonl");
    std::fs::write(&junk, "{\"type\":\"user\"}\n").expect("write");
    let (dir3, args3) = configured(CONFIG);
    let (code, _, err) = admin(&args3[1], &["import", junk.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert!(err.contains("import"), "{err}");
    drop(dir3);
}

//! What was acknowledged survives: kill -9, a full disk, and a damaged database left untouched.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::support::{admin, admin_json, configured, http, start, try_http, BIN};

#[test]
fn every_acknowledged_write_survives_kill_9() {
    let (dir, args) = configured("[passwords]\nscrypt_log_n = 10\n");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = start(dir.path(), &args, &[]);
    let mut refresh = Vec::new();
    for i in 0..10 {
        let body = json!({"email": format!("k{i}@example.com"), "password": "kill-nine-password", "name": "K"});
        let (status, v) = http(&server.addr, "POST", "/v1/auth/register", None, Some(&body));
        assert_eq!(status, 201);
        let (status, v2) = http(
            &server.addr,
            "POST",
            "/v1/auth/refresh",
            None,
            Some(&json!({"refresh_token": v["refresh_token"]})),
        );
        assert_eq!(status, 200);
        refresh.push((v["refresh_token"].clone(), v2["refresh_token"].clone()));
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    let server = start(dir.path(), &args, &[]);
    for (i, (old, new)) in refresh.iter().enumerate() {
        let body = json!({"email": format!("k{i}@example.com"), "password": "kill-nine-password"});
        assert_eq!(
            http(&server.addr, "POST", "/v1/auth/login", None, Some(&body)).0,
            200,
            "user {i}"
        );
        assert_eq!(
            http(
                &server.addr,
                "POST",
                "/v1/auth/refresh",
                None,
                Some(&json!({"refresh_token": new}))
            )
            .0,
            200,
            "rotation {i} was durable"
        );
        assert_eq!(
            http(
                &server.addr,
                "POST",
                "/v1/auth/refresh",
                None,
                Some(&json!({"refresh_token": old}))
            )
            .0,
            401
        );
    }
    assert_eq!(server.terminate().0, 0);
}

#[test]
fn key_use_reaches_the_database_within_the_flush_interval() {
    let (dir, args) =
        configured("[passwords]\nscrypt_log_n = 10\n[api_keys]\nlast_used_flush = \"1s\"\n");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = start(dir.path(), &args, &[]);
    let body =
        json!({"email": "flush@example.com", "password": "flush-test-password", "name": "F"});
    let (_, reg) = http(&server.addr, "POST", "/v1/auth/register", None, Some(&body));
    let token = reg["token"].as_str().expect("token").to_string();
    let body = json!({"name": "k", "scopes": ["databases:read"]});
    let (status, created) = http(
        &server.addr,
        "POST",
        "/v1/auth/api-keys",
        Some(&token),
        Some(&body),
    );
    assert_eq!(status, 201);
    let key = created["api_key"].as_str().expect("key").to_string();
    assert_eq!(
        http(&server.addr, "GET", "/v1/auth/verify", Some(&key), None).0,
        200
    );
    // Past one flush interval, then a crash: no shutdown flush can help.
    std::thread::sleep(Duration::from_millis(2500));
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    let server = start(dir.path(), &args, &[]);
    let (_, list) = http(&server.addr, "GET", "/v1/auth/api-keys", Some(&token), None);
    assert!(list["api_keys"][0]["last_used_at"].is_string(), "{list}");
    assert_eq!(server.terminate().0, 0);
}

#[test]
fn a_corrupted_or_foreign_database_is_refused_at_start() {
    for (name, bytes) in [
        (
            "garbage",
            (0..64 * 1024)
                .map(|i| (i * 7919 % 251) as u8)
                .collect::<Vec<u8>>(),
        ),
        ("sqlite", {
            let mut b = b"SQLite format 3\0".to_vec();
            b.resize(8192, 0);
            b
        }),
    ] {
        let (dir, args) = configured("[passwords]\nscrypt_log_n = 10\n");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let db = data.join("cloudheed-auth.redb");
        std::fs::write(&db, &bytes).expect("write");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let out = Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains("cannot open the database"), "{name}: {err}");
        assert_eq!(
            std::fs::read(&db).expect("read"),
            bytes,
            "{name}: the file is left as it was"
        );
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_under_load_three_times() {
    use std::sync::{Arc, Mutex};
    let (dir, args) = configured("[passwords]\nscrypt_log_n = 10\n");
    let cfg = args[1].clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    #[derive(Default)]
    struct Acked {
        users: Vec<String>,
        rotations: Vec<(String, String)>,
        revoked_keys: Vec<String>,
    }
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..3 {
        let mut server = start(dir.path(), &args, &[]);
        let addr = server.addr.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..3 {
            let (addr, acked, stop) = (addr.clone(), acked.clone(), stop.clone());
            workers.push(std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let email = format!("k{round}-{w}-{i}@example.com");
                    let body =
                        json!({"email": email, "password": "kill-nine-password", "name": "K"});
                    let Some((201, reg)) =
                        try_http(&addr, "POST", "/v1/auth/register", None, Some(&body))
                    else {
                        break;
                    };
                    acked.lock().expect("lock").users.push(email.clone());
                    let token = reg["token"].as_str().unwrap_or_default().to_string();
                    let old = reg["refresh_token"].clone();
                    if let Some((200, v)) = try_http(
                        &addr,
                        "POST",
                        "/v1/auth/refresh",
                        None,
                        Some(&json!({"refresh_token": old})),
                    ) {
                        let new = v["refresh_token"].as_str().unwrap_or_default().to_string();
                        acked
                            .lock()
                            .expect("lock")
                            .rotations
                            .push((email.clone(), new));
                    }
                    let key_body = json!({"name": "k", "scopes": ["databases:read"]});
                    if let Some((201, k)) = try_http(
                        &addr,
                        "POST",
                        "/v1/auth/api-keys",
                        Some(&token),
                        Some(&key_body),
                    ) {
                        let path =
                            format!("/v1/auth/api-keys/{}", k["id"].as_str().unwrap_or_default());
                        if let Some((200, _)) = try_http(&addr, "DELETE", &path, Some(&token), None)
                        {
                            let key = k["api_key"].as_str().unwrap_or_default().to_string();
                            acked.lock().expect("lock").revoked_keys.push(key);
                        }
                    }
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(400 + 150 * round));
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in workers {
            w.join().expect("worker");
        }
        let server = start(dir.path(), &args, &[]);
        let acked = acked.lock().expect("lock");
        assert!(
            !acked.users.is_empty(),
            "round {round} acknowledged nothing"
        );
        for email in &acked.users {
            let body = json!({"email": email, "password": "kill-nine-password"});
            assert_eq!(
                http(&server.addr, "POST", "/v1/auth/login", None, Some(&body)).0,
                200,
                "{email}"
            );
        }
        for key in &acked.revoked_keys {
            assert_eq!(
                http(&server.addr, "GET", "/v1/auth/verify", Some(key), None).0,
                401
            );
        }
        // Each acknowledged rotation's successor is live (it was rotated at most once since).
        for (email, new) in acked
            .rotations
            .iter()
            .filter(|(e, _)| e.starts_with(&format!("k{round}-")))
        {
            let (status, _) = http(
                &server.addr,
                "POST",
                "/v1/auth/refresh",
                None,
                Some(&json!({"refresh_token": new})),
            );
            assert_eq!(status, 200, "rotation for {email}");
        }
        // The audit log after each crash: events are written in the transaction of the change
        // they record, so kill -9 never leaves a broken chain, a change without its event, or an
        // event without its change.
        let (code, out, err) = admin(&cfg, &["audit", "verify"]);
        assert_eq!(code, 0, "round {round}: the chain holds: {out}{err}");
        let registered = admin_json(
            &cfg,
            &["audit", "list", "--type", "register", "--limit", "100000"],
        );
        let registered = registered.as_array().expect("entries");
        let recorded: std::collections::HashSet<&str> = registered
            .iter()
            .filter_map(|e| e["detail"]["email"].as_str())
            .collect();
        for email in &acked.users {
            assert!(
                recorded.contains(email.as_str()),
                "round {round}: {email} has no register event"
            );
        }
        let users = admin_json(&cfg, &["user", "list"]);
        assert_eq!(
            users.as_array().map(Vec::len),
            Some(registered.len()),
            "round {round}: one account per register event"
        );
        drop(acked);
        assert_eq!(server.terminate().0, 0);
    }
}

#[test]
fn acknowledged_rotations_survive_kill_9_during_a_burst_of_grouped_commits_three_times() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const CLIENTS: usize = 32;
    let (dir, args) = configured(
        "[passwords]\nscrypt_log_n = 10\n[limits]\nmax_connections_per_address = 1000\n",
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let email = |round: u64, i: usize| format!("burst{round}-{i}@example.com");
    for round in 0..3 {
        let mut server = start(dir.path(), &args, &[]);
        let firsts: Vec<String> = (0..CLIENTS)
            .map(|i| {
                let body = json!({"email": email(round, i), "password": "kill-nine-password", "name": "B"});
                let (status, v) =
                    http(&server.addr, "POST", "/v1/auth/register", None, Some(&body));
                assert_eq!(status, 201);
                v["refresh_token"].as_str().expect("refresh token").to_string()
            })
            .collect();
        // Each client rotates its own session as fast as it can, so the writes queue together
        // and share commits; each keeps the token it gave up in its last acknowledged rotation.
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = firsts
            .into_iter()
            .map(|first| {
                let (addr, stop) = (server.addr.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut live, mut given_up, mut acked) = (first, None, 0u32);
                    while !stop.load(Ordering::Relaxed) {
                        let body = json!({ "refresh_token": live });
                        let Some((200, v)) =
                            try_http(&addr, "POST", "/v1/auth/refresh", None, Some(&body))
                        else {
                            break;
                        };
                        let next = v["refresh_token"].as_str().unwrap_or_default().to_string();
                        given_up = Some(std::mem::replace(&mut live, next));
                        acked += 1;
                    }
                    (given_up, acked)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + 150 * round));
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        stop.store(true, Ordering::Relaxed);
        let results: Vec<_> = clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect();
        let acked: u32 = results.iter().map(|(_, n)| n).sum();
        assert!(
            acked as usize > CLIENTS,
            "round {round} was no burst: {acked} rotations acknowledged"
        );
        let server = start(dir.path(), &args, &[]);
        // Had an acknowledged rotation been lost, the token it gave up would be live again; had
        // the whole session been lost, that token would be refused too, hence the login first.
        for (i, (given_up, _)) in results.iter().enumerate() {
            let body = json!({"email": email(round, i), "password": "kill-nine-password"});
            assert_eq!(
                http(&server.addr, "POST", "/v1/auth/login", None, Some(&body)).0,
                200,
                "round {round}: client {i}'s account"
            );
            let Some(given_up) = given_up else { continue };
            let body = json!({ "refresh_token": given_up });
            assert_eq!(
                http(&server.addr, "POST", "/v1/auth/refresh", None, Some(&body)).0,
                401,
                "round {round}: client {i}'s last acknowledged rotation was lost"
            );
        }
        assert_eq!(server.terminate().0, 0);
    }
}

#[test]
fn a_full_disk_fails_writes_generically_and_loses_nothing_acknowledged() {
    let (dir, args) = configured("[passwords]\nscrypt_log_n = 10\n");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Room for the database as created, and a little more.
    let server = start(dir.path(), &args, &[("ULIMIT_FSIZE_BLOCKS", "400")]);
    let name = "n".repeat(150);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..2000 {
        let email = format!("disk{i}@example.com");
        let body = json!({"email": email, "password": "full-disk-password", "name": name});
        let (status, v) = http(&server.addr, "POST", "/v1/auth/register", None, Some(&body));
        if status == 201 {
            acknowledged.push(email);
        } else {
            assert_eq!(status, 500, "{v}");
            assert_eq!(
                v,
                json!({"message_code": "internal_error", "message": "An internal error occurred."})
            );
            refused = Some(email);
            break;
        }
    }
    let refused = refused.expect("the disk filled up");
    assert!(
        !acknowledged.is_empty(),
        "some writes fitted before the disk filled"
    );
    assert_eq!(
        http(&server.addr, "GET", "/healthz", None, None).0,
        200,
        "still serving"
    );
    let (code, _) = server.terminate();
    assert_eq!(code, 0);
    // Space is back: every acknowledged account is there, the refused one was not half-made.
    let server = start(dir.path(), &args, &[]);
    for email in &acknowledged {
        let body = json!({"email": email, "password": "full-disk-password"});
        assert_eq!(
            http(&server.addr, "POST", "/v1/auth/login", None, Some(&body)).0,
            200,
            "{email}"
        );
    }
    let body = json!({"email": refused, "password": "full-disk-password", "name": "N"});
    assert_eq!(
        http(&server.addr, "POST", "/v1/auth/register", None, Some(&body)).0,
        201,
        "nothing left of it"
    );
    assert_eq!(server.terminate().0, 0);
}

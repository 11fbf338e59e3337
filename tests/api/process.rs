//! The built binary: CLI, config refusal, first start, signals, and secrets kept out of logs.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_cloudheed-auth");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("CLOUDHEED_AUTH_CONFIG")
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for word in ["serve", "check-config", "--config"] {
        assert!(out.contains(word), "{out}");
    }
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
    let (code, out, _) = run(&["serve", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--listen") && out.contains("--data-dir"));
}

#[test]
fn check_config_accepts_the_example_and_refuses_bad_files_listing_every_problem() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/cloudheed-auth.toml");
    let (code, out, _) = run(&["--config", example, "check-config"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("configuration is valid"));
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"x\"\ncolour = 1\n[tokens]\naccess_ttl = \"soon\"\n",
    )
    .expect("write");
    let (code, _, err) = run(&["--config", bad.to_str().expect("path"), "check-config"]);
    assert_eq!(code, 2);
    for key in ["listen", "colour: unknown key", "tokens.access_ttl"] {
        assert!(err.contains(key), "{err}");
    }
    let (code, _, err) = run(&["--config", "/nonexistent/cloudheed.toml", "check-config"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

/// A temp dir holding a config file with `toml`, and the arguments that serve it on a free port.
fn configured(toml: &str) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    // Every client here is 127.0.0.1: per-address limits would only get in the way.
    std::fs::write(&cfg, format!("{toml}[rate_limits]\nenabled = false\n")).expect("write");
    let cfg = cfg.to_str().expect("utf-8 path").to_string();
    let args = ["--config", &cfg, "serve", "--listen", "127.0.0.1:0"];
    (dir, args.iter().map(|a| a.to_string()).collect())
}

/// A server process and the address it announced.
struct Server {
    child: Child,
    addr: String,
    /// The lines up to and including the one that announced the address.
    startup: Vec<String>,
    log: std::sync::mpsc::Receiver<String>,
}

fn start(cwd: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
    start_with(cwd, args, envs, |line| {
        line.split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    })
}

/// Spawn the server and wait until `announced` finds its address in a log line.
fn start_with(
    cwd: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
    announced: impl Fn(&str) -> Option<String>,
) -> Server {
    // `ULIMIT_FSIZE_BLOCKS` in `envs` runs the server under a file-size limit (512-byte blocks)
    // standing in for a full disk: with SIGXFSZ ignored, writes past it fail with EFBIG.
    let limit = envs
        .iter()
        .find(|(k, _)| *k == "ULIMIT_FSIZE_BLOCKS")
        .map(|(_, v)| *v);
    let mut command = match limit {
        Some(blocks) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!(
                    "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
                ))
                .arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    let mut child = command
        .args(args)
        .current_dir(cwd)
        .env_remove("CLOUDHEED_AUTH_CONFIG")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut startup = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let addr = announced(&line);
                startup.push(line);
                if let Some(addr) = addr {
                    return Server {
                        child,
                        addr,
                        startup,
                        log: rx,
                    };
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early: {status}");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server did not announce its address");
}

impl Server {
    /// Send SIGTERM and return the exit code and the whole log.
    fn terminate(mut self) -> (i32, String) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let mut all = std::mem::take(&mut self.startup);
                all.extend(self.log.try_iter());
                return (status.code().unwrap_or(-1), all.join("\n"));
            }
            assert!(Instant::now() < deadline, "did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A minimal HTTP/1.1 exchange with `Connection: close`.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{auth}\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out[9..12].parse().expect("status");
    let json = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[test]
fn first_start_creates_private_data_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().expect("tmp");
    // No config at all: defaults, with the data dir relative to the working directory.
    let server = start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(http(&server.addr, "GET", "/readyz", None, None).0, 200);
    let data = dir.path().join("data");
    let dir_mode = std::fs::metadata(&data)
        .expect("data dir")
        .permissions()
        .mode();
    let db_mode = std::fs::metadata(data.join("cloudheed-auth.redb"))
        .expect("db")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    assert_eq!(db_mode & 0o777, 0o600);
    let (code, _) = server.terminate();
    assert_eq!(code, 0);
}

#[test]
fn flags_override_the_config_file_and_a_second_server_on_the_same_data_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:1\"\ndata_dir = \"/nonexistent/never\"\n[passwords]\nscrypt_log_n = 10\n")
        .expect("write");
    let data = dir.path().join("mydata");
    let args = [
        "--config",
        cfg.to_str().expect("p"),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("p"),
    ];
    let server = start(dir.path(), &args, &[]);
    assert!(data.join("cloudheed-auth.redb").exists());
    let second = Command::new(BIN).args(args).output().expect("run");
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("database"), "{second:?}");
    assert_eq!(
        err.matches("cannot open the database").count(),
        1,
        "said once: {err}"
    );
    assert_eq!(
        http(&server.addr, "GET", "/healthz", None, None).0,
        200,
        "the first is unaffected"
    );
    assert_eq!(server.terminate().0, 0);
}

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
fn sigint_stops_the_server_cleanly_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]);
    let ok = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let mut child = server.child;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
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
        drop(acked);
        assert_eq!(server.terminate().0, 0);
    }
}

/// Like `http`, but `None` when the server is gone (connection refused or cut).
fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{auth}\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let json = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Some((status, serde_json::from_str(json).unwrap_or(Value::Null)))
}

#[test]
fn fifty_concurrent_logins_at_the_default_cost_stay_under_1_gib() {
    use cloudheed_auth::domain::password::Password;
    use cloudheed_auth::secret::Secret;
    use cloudheed_auth::store::{NewSession, NewUser, Store};
    // The default scrypt cost (ln=17, 128 MiB per hash); only rate limits are off.
    let (dir, args) = configured("");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Fifty accounts written straight into the store, sharing one hash computed once.
    let params = scrypt::Params::new(17, 8, 1, 32).expect("params");
    let hash = cloudheed_auth::crypto::password::hash_with(
        &params,
        &Password::new("overload-password-1".into()),
    )
    .expect("hash");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store =
            Store::open(&dir.path().join("data").join("cloudheed-auth.redb")).expect("open");
        for i in 0..50 {
            let user = NewUser {
                id: format!("user-load{i}"),
                email: format!("load{i}@example.com"),
                email_key: format!("load{i}@example.com"),
                name: "L".into(),
                company: None,
                plan: "free".into(),
                password_hash: Secret::new(hash.clone()),
                created_at: 1,
            };
            let session = NewSession {
                id: format!("ses-load{i}"),
                user_id: user.id.clone(),
                now: 1,
                expires_at: 2,
                user_agent: None,
                ip: None,
                keep_at_most: 100,
                network: None,
                refresh_hash: [i as u8; 32],
            };
            store.create_account(user, session).await.expect("create");
        }
    });
    drop(rt);
    let server = start(dir.path(), &args, &[]);
    let pid = server.child.id();
    let mut threads = Vec::new();
    for i in 0..50 {
        let addr = server.addr.clone();
        threads.push(std::thread::spawn(move || {
            let body =
                json!({"email": format!("load{i}@example.com"), "password": "overload-password-1"});
            try_http(&addr, "POST", "/v1/auth/login", None, Some(&body))
                .map(|(s, v)| (s, v["message_code"].clone()))
        }));
    }
    let mut ok = 0;
    for t in threads {
        match t.join().expect("thread") {
            Some((200, _)) => ok += 1,
            Some((503, code)) => assert_eq!(code, "overloaded"),
            other => panic!("every login ends 200 or 503: {other:?}"),
        }
    }
    assert!(ok > 0, "some logins got through");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    assert!(peak_kib < 1024 * 1024, "peak memory {peak_kib} KiB");
    assert_eq!(server.terminate().0, 0);
}

#[test]
fn systemd_is_told_when_the_server_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().expect("tmp");
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let socket_env = sock_path.to_str().expect("utf-8").to_string();
    let server = start(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("NOTIFY_SOCKET", socket_env.as_str())],
    );
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 arrives");
    assert_eq!(&buf[..n], b"READY=1");
    assert_eq!(
        http(&server.addr, "GET", "/healthz", None, None).0,
        200,
        "ready means serving"
    );
    let (code, _) = server.terminate();
    assert_eq!(code, 0);
    let n = sock.recv(&mut buf).expect("STOPPING=1 arrives");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

#[test]
fn the_systemd_unit_rates_below_2_in_systemd_analyze() {
    let unit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/systemd/cloudheed-auth.service"
    );
    let text = std::fs::read_to_string(unit).expect("unit");
    for line in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=cloudheed-auth",
        "check-config",
        "/etc/cloudheed-auth/",
    ] {
        assert!(text.contains(line), "{line}");
    }
    let Ok(out) = Command::new("systemd-analyze")
        .args(["security", "--offline=true", unit])
        .output()
    else {
        eprintln!("systemd-analyze is not installed; only the unit's text was checked");
        return;
    };
    let report = String::from_utf8_lossy(&out.stdout);
    let level: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for cloudheed-auth.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    assert!(level < 2.0, "exposure {level}");
}

#[test]
fn every_file_the_debian_package_ships_exists() {
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest: toml::Table = std::fs::read_to_string(format!("{root}/Cargo.toml"))
        .expect("manifest")
        .parse()
        .expect("toml");
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .expect("assets");
    assert!(assets.len() >= 4);
    for asset in assets {
        let source = asset[0].as_str().expect("source");
        if source != "target/release/cloudheed-auth" {
            assert!(std::path::Path::new(root).join(source).exists(), "{source}");
        }
    }
    let packaged =
        std::fs::read_to_string(format!("{root}/packaging/debian/config.toml")).expect("config");
    cloudheed_auth::Config::from_toml(&packaged).expect("the packaged config is valid");
}

/// What lintian checks of the control fields and the changelog, without building the package.
#[test]
fn the_debian_package_has_a_maintainer_address_a_changelog_and_a_short_synopsis() {
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest: toml::Table = std::fs::read_to_string(format!("{root}/Cargo.toml"))
        .expect("manifest")
        .parse()
        .expect("toml");
    let package = &manifest["package"];
    let deb = &package["metadata"]["deb"];
    let maintainer = deb["maintainer"].as_str().expect("maintainer");
    let (name, address) = maintainer.split_once(" <").expect("Name <address>");
    assert!(!name.trim().is_empty(), "{maintainer}");
    let address = address.strip_suffix('>').expect("closing >");
    assert!(
        address
            .split_once('@')
            .is_some_and(|(l, h)| !l.is_empty() && h.contains('.')),
        "{maintainer}"
    );
    // cargo-deb takes the synopsis from `description`.
    let synopsis = package["description"].as_str().expect("description");
    assert!(synopsis.chars().count() < 80, "{synopsis}");
    assert!(
        !synopsis.contains('\n') && !synopsis.ends_with('.'),
        "{synopsis}"
    );
    assert!(
        !["A ", "An ", "The "]
            .iter()
            .any(|a| synopsis.starts_with(a)),
        "{synopsis}"
    );
    let extended = deb["extended-description"].as_str().expect("extended");
    assert!(
        extended.lines().all(|l| l.chars().count() <= 80),
        "{extended}"
    );
    let path = deb["changelog"].as_str().expect("changelog key");
    let changelog = std::fs::read_to_string(format!("{root}/{path}")).expect("changelog");
    let first = changelog.lines().next().unwrap_or_default();
    let (head, urgency) = first.split_once("; urgency=").expect("; urgency=");
    let version = format!(
        "{} ({}-",
        package["name"].as_str().expect("name"),
        package["version"].as_str().expect("version")
    );
    assert!(head.starts_with(&version), "{first:?} is not for {version}");
    assert!(head.ends_with(") unstable"), "{first:?}");
    assert!(["low", "medium", "high"].contains(&urgency), "{first:?}");
    let trailer = format!(" -- {maintainer}  ");
    assert!(
        changelog.lines().any(|l| l.starts_with(&trailer)),
        "no '{trailer}' line:\n{changelog}"
    );
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

/// Run the admin CLI with `config`; returns (exit code, stdout, stderr).
fn admin(config: &str, args: &[&str]) -> (i32, String, String) {
    // The test configs use the default, relative data dir: run where the server runs.
    let cwd = std::path::Path::new(config).parent().expect("config dir");
    let out = Command::new(BIN)
        .args(["--config", config])
        .args(args)
        .current_dir(cwd)
        .env_remove("CLOUDHEED_AUTH_CONFIG")
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn admin_json(config: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = admin(config, &all);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

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

/// Turn TOTP on for the holder of `token` over HTTP, with a code from the real clock; returns
/// the secret and the answer of verify.
fn enable_totp(addr: &str, token: &str) -> (String, Value) {
    let (_, setup) = http(
        addr,
        "POST",
        "/v1/auth/2fa/setup",
        Some(token),
        Some(&json!({})),
    );
    let secret = setup["secret"].as_str().expect("secret").to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let code = crate::helpers::totp_at(&secret, now);
    let (status, enabled) = http(
        addr,
        "POST",
        "/v1/auth/2fa/verify",
        Some(token),
        Some(&json!({ "code": code })),
    );
    assert_eq!(status, 200, "{enabled}");
    (secret, enabled)
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

//! The launcher every process test shares: the built binary, a config in a temp dir, a started
//! server that can be stopped, and a bare HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub(super) const BIN: &str = env!("CARGO_BIN_EXE_cloudheed-auth");

/// A temp dir holding a config file with `toml`, and the arguments that serve it on a free port.
pub(super) fn configured(toml: &str) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    // Every client here is 127.0.0.1: per-address limits would only get in the way.
    std::fs::write(&cfg, format!("{toml}[rate_limits]\nenabled = false\n")).expect("write");
    let cfg = cfg.to_str().expect("utf-8 path").to_string();
    let args = ["--config", &cfg, "serve", "--listen", "127.0.0.1:0"];
    (dir, args.iter().map(|a| a.to_string()).collect())
}

/// A server process and the address it announced.
pub(super) struct Server {
    pub(super) child: Child,
    pub(super) addr: String,
    /// The lines up to and including the one that announced the address.
    startup: Vec<String>,
    log: std::sync::mpsc::Receiver<String>,
}

pub(super) fn start(cwd: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
    start_with(cwd, args, envs, |line| {
        line.split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    })
}

/// Spawn the server and wait until `announced` finds its address in a log line.
pub(super) fn start_with(
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
    pub(super) fn terminate(mut self) -> (i32, String) {
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

/// A test that fails midway must not leave its server running (and holding a port and a data
/// dir) after the test binary is gone.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A minimal HTTP/1.1 exchange with `Connection: close`.
pub(super) fn http(
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

/// Like `http`, but `None` when the server is gone (connection refused or cut).
pub(super) fn try_http(
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

/// Turn TOTP on for the holder of `token` over HTTP, with a code from the real clock; returns
/// the secret and the answer of verify.
pub(super) fn enable_totp(addr: &str, token: &str) -> (String, Value) {
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

/// Run the binary with `args` (in `cwd`, if given) and no config from the environment; returns
/// (exit code, stdout, stderr).
pub(super) fn run_cli(cwd: Option<&std::path::Path>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("CLOUDHEED_AUTH_CONFIG");
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    let out = command.output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run an admin command with `config`, where the server runs (the test configs use the
/// default, relative data dir); returns (exit code, stdout, stderr).
pub(super) fn admin(config: &str, args: &[&str]) -> (i32, String, String) {
    let cwd = std::path::Path::new(config).parent().expect("config dir");
    let all: Vec<&str> = ["--config", config]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    run_cli(Some(cwd), &all)
}

/// Run an admin command with `--json`, expect exit 0, and parse what it printed.
pub(super) fn admin_json(config: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = admin(config, &all);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

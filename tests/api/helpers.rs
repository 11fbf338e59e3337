//! The test server and a small typed HTTP client for it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cloudheed_auth::{App, Config, ManualClock};
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub dir: Arc<TempDir>,
    extra: String,
    /// The server's state while it runs, for the `testing` hooks; let go of at stop, since it
    /// holds the database open.
    state: Mutex<Option<Arc<cloudheed_auth::AppState>>>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A response, fully read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What register or login hands back.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub token: String,
    pub refresh_token: String,
    pub user_id: String,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn code(&self) -> String {
        self.json()["message_code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// The PostgreSQL schema of the server in `dir`: made on first use, kept for its restarts.
fn postgres_url(dir: &TempDir) -> String {
    let file = dir.path().join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url;
    }
    let url = crate::postgres::server()
        .expect("PostgreSQL for CLOUDHEED_TEST_BACKEND=postgres")
        .new_schema();
    std::fs::write(&file, &url).expect("write");
    url
}

/// Whether this run's servers keep a redb file (tests that read the file itself only hold
/// there); says so when they do not.
pub fn on_redb(test: &str) -> bool {
    only_on_redb(test, "reads the redb file")
}

/// Whether this run's servers use the embedded store; when they do not, says why `test` only
/// means something there.
pub fn only_on_redb(test: &str, why: &str) -> bool {
    let redb = !crate::postgres::suite_on_postgres();
    if !redb {
        eprintln!("{test}: {why}; not run on PostgreSQL");
    }
    redb
}

/// Merge `extra` TOML over the test defaults (temp data dir, scrypt_log_n = 10, per-address
/// rate limits off: every test client is 127.0.0.1; the rate-limit tests turn them on).
fn config_text(dir: &TempDir, extra: &str) -> String {
    let mut base: toml::Table = toml::from_str(&format!(
        "data_dir = {:?}\n[passwords]\nscrypt_log_n = 10\n[rate_limits]\nenabled = false\n",
        dir.path().join("data").display().to_string()
    ))
    .expect("base config");
    if crate::postgres::suite_on_postgres() {
        let mut store = toml::Table::new();
        store.insert("backend".into(), "postgres".into());
        store.insert("url".into(), postgres_url(dir).into());
        base.insert("store".into(), toml::Value::Table(store));
    }
    let extra: toml::Table = toml::from_str(extra).expect("extra config");
    for (k, v) in extra {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => b.extend(e),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
    toml::to_string(&base).expect("serialise")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with("").await
    }

    /// A server with extra config, e.g. `"[tokens]\nrefresh_reuse_grace = \"10s\""`.
    pub async fn spawn_with(extra: &str) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let clock = Arc::new(ManualClock::starting_now());
        Self::start(dir, clock, extra).await
    }

    async fn start(dir: Arc<TempDir>, clock: Arc<ManualClock>, extra: &str) -> TestApp {
        let config = Config::from_toml(&config_text(&dir, extra)).expect("valid test config");
        let app = App::build_with_clock(config, clock.clone())
            .await
            .expect("app builds");
        let state = app.state().clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            clock,
            dir,
            extra: extra.to_string(),
            state: Mutex::new(Some(state)),
            stop: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
        }
    }

    /// The running server's state (for `cloudheed_auth::testing` hooks such as queuing mail).
    pub fn state(&self) -> Arc<cloudheed_auth::AppState> {
        self.state
            .lock()
            .expect("lock")
            .clone()
            .expect("server is running")
    }

    /// Stop gracefully and wait until the store is closed.
    pub async fn stop(&self) {
        self.state.lock().expect("lock").take();
        if let Some(tx) = self.stop.lock().expect("lock").take() {
            let _ = tx.send(());
        }
        let task = self.task.lock().expect("lock").take();
        if let Some(task) = task {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("server stops in time")
                .expect("server task");
        }
    }

    /// Stop, then start again on the same data dir and clock, with `extra` config.
    pub async fn restart_with(self, extra: &str) -> TestApp {
        self.stop().await;
        // Connection tasks may still hold the state (and so the database) for a moment.
        for _ in 0..100 {
            let config = Config::from_toml(&config_text(&self.dir, extra)).expect("config");
            match App::build_with_clock(config, self.clock.clone()).await {
                Ok(app) => drop(app),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
            return Self::start(self.dir.clone(), self.clock.clone(), extra).await;
        }
        panic!("database still held after stop");
    }

    pub async fn restart(self) -> TestApp {
        let extra = self.extra.clone();
        self.restart_with(&extra).await
    }

    /// Every byte the server keeps: the redb file (after stopping it), or on PostgreSQL the
    /// binary columns of every table of its schema, decoded; for tests that look for secrets
    /// at rest.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        if !crate::postgres::suite_on_postgres() {
            self.stop().await;
            return std::fs::read(self.db_path()).expect("db file");
        }
        let url = std::fs::read_to_string(self.dir.path().join("postgres-url")).expect("url");
        let schema = url.rsplit("%3D").next().expect("schema").to_string();
        let pg = crate::postgres::server().expect("PostgreSQL");
        let columns = [
            ("users", "record"),
            ("sessions", "record"),
            ("refresh_tokens", "hash"),
            ("signing_keys", "record"),
            ("api_keys", "hash"),
            ("api_keys", "record"),
            ("outbox", "record"),
            ("mail_tokens", "hash"),
            ("mail_tokens", "record"),
            ("latest_mail_token", "hash"),
            ("audit", "record"),
            ("audit_meta", "record"),
            ("refresh_grace", "sealed"),
            ("shared_limits", "state"),
        ];
        let mut out = Vec::new();
        for (table, column) in columns {
            let query = format!("SELECT encode({column}, 'hex') FROM {schema}.{table}");
            let rows = std::process::Command::new(pg.bin.join("psql"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &pg.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args(["-At", "-c", &query, "postgres"])
                .output()
                .expect("psql");
            assert!(
                rows.status.success(),
                "{}",
                String::from_utf8_lossy(&rows.stderr)
            );
            for line in String::from_utf8_lossy(&rows.stdout).lines() {
                let bytes = (0..line.len() / 2)
                    .map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).expect("hex"));
                out.extend(bytes);
                out.push(b'\n');
            }
        }
        assert!(out.len() > 100, "the schema held data");
        out
    }

    /// The redb file of this server.
    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("data").join(Config::DB_FILE)
    }

    /// Send one request on a fresh connection.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> TestResponse {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.post_as(path, None, body).await
    }

    pub async fn post_as(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        self.request("POST", path, &headers, Some(body.to_string().into_bytes()))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.request("GET", path, &headers, None).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        let auth = format!("Bearer {token}");
        self.request("DELETE", path, &[("authorization", &auth)], None)
            .await
    }

    pub async fn register(&self, email: &str) -> Tokens {
        let r = self
            .post(
                "/v1/auth/register",
                json!({"email": email, "password": PASSWORD, "name": "Test User"}),
            )
            .await;
        assert_eq!(r.status, 201, "register: {:?}", r.body);
        tokens(&r)
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.post(
            "/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.post(
            "/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    pub async fn me(&self, token: &str) -> TestResponse {
        self.get("/v1/auth/me", Some(token)).await
    }

    /// Write raw bytes on a new connection and read until the server closes it or `wait` passes.
    pub async fn raw(&self, bytes: &[u8], wait: Duration) -> String {
        let mut s = TcpStream::connect(self.addr).await.expect("connect");
        s.write_all(bytes).await.expect("write");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.get_mut().ok().and_then(Option::take) {
            let _ = tx.send(());
        }
    }
}

pub fn tokens(r: &TestResponse) -> Tokens {
    let v = r.json();
    Tokens {
        token: v["token"].as_str().expect("token").to_string(),
        refresh_token: v["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string(),
        user_id: v["user"]["id"].as_str().unwrap_or_default().to_string(),
    }
}

/// Decode one base64url JWT segment as JSON.
pub fn jwt_part(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).expect("segment");
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(seg.as_bytes())
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

/// Every key of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

/// The test clock's current time, for assertions about issued timestamps.
pub trait ClockExt {
    fn now_for_tests(&self) -> i64;
}

impl ClockExt for ManualClock {
    fn now_for_tests(&self) -> i64 {
        use cloudheed_auth::Clock;
        self.now()
    }
}

/// RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s) written out here so tests do not trust the
/// server's implementation; checked against the RFC vectors in `two_factor.rs`.
pub fn totp_at(secret_b32: &str, unix_time: i64) -> String {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .expect("base32 secret");
    hotp(&key, (unix_time / 30) as u64)
}

/// RFC 4226 HOTP with 6 digits.
pub fn hotp(key: &[u8], counter: u64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = (h[19] & 0x0f) as usize;
    let n = ((h[o] as u32 & 0x7f) << 24)
        | ((h[o + 1] as u32) << 16)
        | ((h[o + 2] as u32) << 8)
        | h[o + 3] as u32;
    format!("{:06}", n % 1_000_000)
}

/// The path of a real component (nginx, caddy, promtool, ...) the test drives. Under CI
/// (`CI=true`, where `.ci/run` installs it) a missing one fails the test; locally the test is
/// skipped with the reason printed, so a developer without the package still gets a green run.
pub fn require_tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is not installed; .ci/run installs it and CI needs it"
        );
        eprintln!("skipped: {name} is not installed (apt-get install it to run this test)");
    }
    found
}

/// Send one operator command over the running server's admin socket.
pub async fn admin(app: &TestApp, command: serde_json::Value) -> serde_json::Value {
    let path = app.dir.path().join("data").join("admin.sock");
    let mut socket = tokio::net::UnixStream::connect(path)
        .await
        .expect("admin socket");
    socket
        .write_all(format!("{command}\n").as_bytes())
        .await
        .expect("send");
    let mut line = String::new();
    tokio::io::BufReader::new(socket)
        .read_line(&mut line)
        .await
        .expect("answer");
    serde_json::from_str(&line).expect("json answer")
}

/// A new API key of the user behind `token`, with `scopes`.
pub async fn create_key(app: &TestApp, token: &str, scopes: &[&str]) -> String {
    let r = app
        .post_as(
            "/v1/auth/api-keys",
            Some(token),
            json!({"name": "k", "scopes": scopes}),
        )
        .await;
    assert_eq!(r.status, 201, "create key: {:?}", r.body);
    r.json()["api_key"].as_str().expect("key").to_string()
}

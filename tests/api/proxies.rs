//! The shipped nginx and Caddy files, run for real between clients, the server and an upstream.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::helpers::{require_tool, TestApp};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The addresses the shipped files use for the auth server, the API and the listener; a test
/// replaces exactly these and nothing else.
const AUTH_ADDR: &str = "127.0.0.1:8080";
const API_ADDR: &str = "127.0.0.1:9000";
const HOST: &str = "api.example.com";
/// Two clients, told apart by the proxy only through their source address.
const MALLORY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const ALICE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/packaging/proxy/{name}")).expect("shipped file")
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Nginx,
    Caddy,
}

/// A proxy process, killed by its PID when the test ends however it ends.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
    _dir: TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn start(kind: Kind, auth: SocketAddr, api: SocketAddr) -> Option<Proxy> {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = dir.path().join("proxy.log");
        let out = std::fs::File::create(&log).expect("log");
        let mut cmd = match kind {
            Kind::Nginx => {
                let bin = require_tool("nginx")?;
                let site = shipped("nginx.conf")
                    .replace(AUTH_ADDR, &auth.to_string())
                    .replace(API_ADDR, &api.to_string())
                    .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
                std::fs::write(dir.path().join("cloudheed-auth.conf"), site).expect("write");
                // What /etc/nginx/nginx.conf provides on a real host, with every path in the
                // temp dir; one process, so killing its PID leaves no worker behind.
                let main = format!(
                    "master_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                     events {{ worker_connections 256; }}\nhttp {{\n\
                     access_log {d}/access.log;\nclient_body_temp_path {d}/client_body;\n\
                     proxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
                     uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
                     include {d}/cloudheed-auth.conf;\n}}\n"
                );
                std::fs::write(dir.path().join("nginx.conf"), main).expect("write");
                let mut cmd = Command::new(bin);
                cmd.args(["-p", &d, "-c", &format!("{d}/nginx.conf")])
                    .args(["-e", &format!("{d}/error.log"), "-g", "daemon off;"]);
                cmd
            }
            Kind::Caddy => {
                let bin = require_tool("caddy")?;
                let site = shipped("Caddyfile")
                    .replace(AUTH_ADDR, &auth.to_string())
                    .replace(API_ADDR, &api.to_string())
                    .replace(
                        &format!("\n{HOST} {{"),
                        &format!("\nhttp://{HOST}:{port} {{"),
                    );
                let global = format!(
                    "{{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n\
                     \tstorage file_system {d}/caddy\n}}\n"
                );
                let file = format!("{d}/Caddyfile");
                std::fs::write(&file, global + &site).expect("write");
                let mut cmd = Command::new(bin);
                cmd.args(["run", "--config", &file, "--adapter", "caddyfile"])
                    .env("XDG_DATA_HOME", &d)
                    .env("XDG_CONFIG_HOME", &d)
                    .env("HOME", &d);
                cmd
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start proxy");
        let mut proxy = Proxy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(proxy.addr).await.is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("{kind:?} exited ({status}):\n{}", proxy.log());
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?} not up:\n{}",
                proxy.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(proxy)
    }
}

/// Answers every request with the headers it received, as `{name: [values]}`, and keeps them.
async fn upstream() -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (k, v) in req.headers() {
                    headers
                        .entry(k.as_str().to_string())
                        .or_default()
                        .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
                }
                let v = json!(headers);
                seen.lock().expect("lock").push(v.clone());
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(v.to_string())))) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, kept)
}

/// A TCP relay in front of the server that keeps every byte the proxy sends it, so a test can
/// read the auth subrequests as they went out.
async fn tap(target: SocketAddr) -> (SocketAddr, Arc<Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sent = Arc::new(Mutex::new(String::new()));
    let kept = sent.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let sent = sent.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut from_proxy, mut to_proxy) = inbound.into_split();
                let (mut from_server, mut to_server) = outbound.into_split();
                let up = async move {
                    let mut buf = [0u8; 8192];
                    while let Ok(n @ 1..) = from_proxy.read(&mut buf).await {
                        sent.lock()
                            .expect("lock")
                            .push_str(&String::from_utf8_lossy(&buf[..n]));
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_proxy).await;
                    let _ = to_proxy.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (addr, kept)
}

/// The server with its limits on and the proxy trusted, an upstream, and the proxy between.
struct Stack {
    app: TestApp,
    seen: Arc<Mutex<Vec<Value>>>,
    to_auth: Arc<Mutex<String>>,
    proxy: Proxy,
}

impl Stack {
    async fn start(kind: Kind) -> Option<Stack> {
        let app = TestApp::spawn_with(
            "[rate_limits]\nenabled = true\ntrusted_proxies = [\"127.0.0.1\"]\n",
        )
        .await;
        let (api, seen) = upstream().await;
        let (auth, to_auth) = tap(app.addr).await;
        let proxy = Proxy::start(kind, auth, api).await?;
        Some(Stack {
            app,
            seen,
            to_auth,
            proxy,
        })
    }

    /// The last X-Forwarded-For hop of each auth subrequest so far: whom the server is told
    /// the client is.
    fn clients_named_to_the_server(&self) -> Vec<String> {
        let sent = self.to_auth.lock().expect("lock");
        sent.split("\r\n")
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("x-forwarded-for").then(|| {
                    value
                        .rsplit(',')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string()
                })
            })
            .collect()
    }

    fn upstream_requests(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    /// One request through the proxy on a new connection from `from`.
    async fn send(
        &self,
        from: Ipv4Addr,
        method: &str,
        credential: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (u16, String) {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from((from, 0))).expect("bind");
        let stream = socket.connect(self.proxy.addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri("/api/databases/42")
            .header("host", HOST);
        if let Some(c) = credential {
            req = req.header("authorization", format!("Bearer {c}"));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::new())).expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
            .await
            .expect("proxy answers in time")
            .expect("response");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A request that must reach the upstream: the headers the upstream received.
    async fn through(
        &self,
        from: Ipv4Addr,
        method: &str,
        credential: &str,
        extra: &[(&str, &str)],
    ) -> Value {
        let (status, body) = self.send(from, method, Some(credential), extra).await;
        assert_eq!(
            status,
            200,
            "{method} from {from}: {body}\n{}",
            self.proxy.log()
        );
        serde_json::from_str(&body).expect("the upstream's JSON")
    }
}

/// A user's access token, and an API key of that user holding only `databases:read`.
async fn user(app: &TestApp, email: &str) -> (String, String, String, String) {
    let t = app.register(email).await;
    let r = app
        .post_as(
            "/v1/auth/api-keys",
            Some(&t.token),
            json!({"name": "reader", "scopes": ["databases:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let v = r.json();
    let key = v["api_key"].as_str().expect("key").to_string();
    let id = v["id"].as_str().expect("id").to_string();
    (t.user_id, t.token, key, id)
}

/// A client's own identity headers, also spelt with "_", which CGI and FastCGI backends read
/// as the same names.
const FORGED: [(&str, &str); 6] = [
    ("x-auth-user-id", "evil"),
    ("x-auth-credential", "api_key"),
    ("x-auth-scopes", "admin"),
    ("x-auth-key-id", "evil"),
    ("x_auth_user_id", "evil"),
    ("x-auth_key-id", "evil"),
];

async fn identity_reaches_the_upstream_and_forged_headers_do_not(kind: Kind) {
    let Some(s) = Stack::start(kind).await else {
        return;
    };
    let (user_id, token, key, key_id) = user(&s.app, "proxied@example.com").await;
    for method in ["GET", "POST"] {
        for forged in [&[][..], &FORGED[..]] {
            let h = s.through(ALICE, method, &token, forged).await;
            assert_eq!(h["x-auth-user-id"], json!([user_id]), "{kind:?} {h}");
            assert_eq!(h["x-auth-credential"], json!(["session"]), "{h}");
            assert_eq!(
                h["x-auth-scopes"],
                json!(["databases:read databases:write"]),
                "{h}"
            );
            // A session has no key id; neither the client's nor an unfilled placeholder
            // may stand in for it.
            assert!(h.get("x-auth-key-id").is_none(), "{kind:?} {h}");
            assert!(!h.to_string().contains("evil"), "{kind:?} {h}");
        }
    }
    for forged in [&[][..], &FORGED[..]] {
        let h = s.through(ALICE, "GET", &key, forged).await;
        assert_eq!(h["x-auth-user-id"], json!([user_id]), "{kind:?} {h}");
        assert_eq!(h["x-auth-credential"], json!(["api_key"]), "{h}");
        assert_eq!(h["x-auth-scopes"], json!(["databases:read"]), "{h}");
        assert_eq!(h["x-auth-key-id"], json!([key_id]), "{h}");
        assert!(!h.to_string().contains("evil"), "{h}");
    }
}

async fn no_credential_is_401_and_a_missing_scope_is_403(kind: Kind) {
    let Some(s) = Stack::start(kind).await else {
        return;
    };
    let (_, _, key, _) = user(&s.app, "scoped@example.com").await;
    for credential in [None, Some("junk"), Some(&key[..key.len() - 1])] {
        for forged in [&[][..], &FORGED[..]] {
            let (status, body) = s.send(ALICE, "GET", credential, forged).await;
            assert_eq!(status, 401, "{kind:?} {credential:?} {body}");
        }
    }
    // The key holds databases:read; a POST needs databases:write.
    let (status, body) = s.send(ALICE, "POST", Some(&key), &FORGED).await;
    assert_eq!(status, 403, "{kind:?} {body}");
    assert_eq!(
        s.upstream_requests(),
        0,
        "a refused request reached the upstream"
    );
}

async fn junk_from_one_client_locks_no_one_out(kind: Kind) {
    let Some(s) = Stack::start(kind).await else {
        return;
    };
    let (_, _, mallory_key, _) = user(&s.app, "mallory@example.com").await;
    let (alice_id, _, alice_key, _) = user(&s.app, "alice@example.com").await;
    for i in 0..50 {
        let junk = format!("junk-{i}");
        // Half of them claim to come from Alice; the proxy appends the real address, and the
        // server believes only the hop its trusted proxy saw.
        let claim: &[(&str, &str)] = if i % 2 == 0 {
            &[("x-forwarded-for", "127.0.0.3")]
        } else {
            &[]
        };
        let (status, _) = s.send(MALLORY, "GET", Some(&junk), claim).await;
        assert_ne!(status, 200, "{kind:?}");
    }
    assert_eq!(s.upstream_requests(), 0);
    let h = s.through(ALICE, "GET", &alice_key, &[]).await;
    assert_eq!(h["x-auth-user-id"], json!([alice_id]), "{kind:?} {h}");
    // Even the client that sent the junk is not refused its own valid key.
    s.through(MALLORY, "GET", &mallory_key, &[]).await;
    let mut expected = vec![MALLORY.to_string(); 50];
    expected.extend([ALICE.to_string(), MALLORY.to_string()]);
    assert_eq!(s.clients_named_to_the_server(), expected, "{kind:?}");
}

#[tokio::test]
async fn nginx_passes_the_identity_and_drops_forged_headers() {
    identity_reaches_the_upstream_and_forged_headers_do_not(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_passes_the_identity_and_drops_forged_headers() {
    identity_reaches_the_upstream_and_forged_headers_do_not(Kind::Caddy).await;
}

#[tokio::test]
async fn nginx_answers_401_without_a_credential_and_403_without_the_scope() {
    no_credential_is_401_and_a_missing_scope_is_403(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_answers_401_without_a_credential_and_403_without_the_scope() {
    no_credential_is_401_and_a_missing_scope_is_403(Kind::Caddy).await;
}

#[tokio::test]
async fn nginx_junk_from_one_client_locks_no_one_out() {
    junk_from_one_client_locks_no_one_out(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_junk_from_one_client_locks_no_one_out() {
    junk_from_one_client_locks_no_one_out(Kind::Caddy).await;
}

#[test]
fn the_readme_shows_each_shipped_file_verbatim() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).expect("README");
    for name in ["nginx.conf", "Caddyfile", "traefik.yml"] {
        assert!(
            readme.contains(&shipped(name)),
            "README lacks packaging/proxy/{name}"
        );
    }
}

#[test]
fn the_shipped_files_use_only_the_addresses_the_tests_replace() {
    for name in ["nginx.conf", "Caddyfile", "traefik.yml"] {
        let text = shipped(name);
        assert!(
            text.contains(AUTH_ADDR) && text.contains(API_ADDR),
            "{name}"
        );
        assert!(text.contains(HOST), "{name}");
    }
    assert!(shipped("nginx.conf").contains("\n    listen 80;\n"));
    assert!(shipped("Caddyfile").contains(&format!("\n{HOST} {{\n")));
}

#[test]
fn the_packaged_config_trusts_the_local_proxy() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("packaging/debian/config.toml"))
        .expect("config");
    let config: toml::Table = text.parse().expect("toml");
    let trusted = config["rate_limits"]["trusted_proxies"]
        .as_array()
        .expect("trusted_proxies");
    for loopback in ["127.0.0.1", "::1"] {
        assert!(
            trusted.iter().any(|v| v.as_str() == Some(loopback)),
            "{loopback} is not trusted"
        );
    }
}

//! The HTTP edge: error contract, headers, malformed input, limits, overload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};

const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-type", "application/json"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let app = TestApp::spawn().await;
    for path in [
        "/",
        "/v1/auth/nope",
        "/v1/auth/me/",
        "/v1/auth/sessions/",
        "/v1/auth/sessions/%2e%2e%2f",
    ] {
        let r = app.get(path, None).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "not_found".to_string()),
            "{path}"
        );
    }
    for (method, path, allow) in [
        ("GET", "/v1/auth/login", "POST"),
        ("PUT", "/v1/auth/register", "POST"),
        ("TRACE", "/v1/auth/me", "GET, HEAD, DELETE"),
        ("DELETE", "/v1/auth/sessions", "GET, HEAD"),
        ("POST", "/.well-known/jwks.json", "GET, HEAD"),
        ("PATCH", "/v1/auth/api-keys/key-x", "DELETE"),
    ] {
        let r = app.request(method, path, &[], None).await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.code(), "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow));
    }
}

#[tokio::test]
async fn head_is_answered_on_every_get_route_without_a_body() {
    let app = TestApp::spawn().await;
    let t = app.register("head@example.com").await;
    let auth = format!("Bearer {}", t.token);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/v1/openapi.json",
        "/v1/auth/me",
        "/v1/auth/verify",
        "/v1/auth/sessions",
        "/v1/auth/api-keys",
    ] {
        let headers = [("authorization", auth.as_str())];
        let get = app.request("GET", path, &headers, None).await;
        let head = app.request("HEAD", path, &headers, None).await;
        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(get.status, 200, "{path}");
        assert!(head.body.is_empty(), "{path}: HEAD has no body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
    }
    let head = app.request("HEAD", "/healthz", &[], None).await;
    let get = app.get("/healthz", None).await;
    assert_eq!(
        head.header("content-length").map(str::to_string),
        Some(get.body.len().to_string()),
        "HEAD says how long the GET body is"
    );
}

#[tokio::test]
async fn every_response_carries_the_json_and_security_headers() {
    let app = TestApp::spawn().await;
    let t = app.register("hdrs@example.com").await;
    let responses = [
        app.me(&t.token).await,
        app.get("/healthz", None).await,
        app.get("/nope", None).await,
        app.request("PATCH", "/v1/auth/me", &[], None).await,
        app.me("garbage").await,
        app.post("/v1/auth/register", json!({})).await,
        app.request(
            "POST",
            "/v1/auth/login",
            &[("content-type", "application/json")],
            Some(b"{".to_vec()),
        )
        .await,
    ];
    for r in responses {
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(r.header(name), Some(value), "{name} on {}", r.status);
        }
        assert!(r.header("content-security-policy").is_some());
        assert!(r.header("x-request-id").is_some());
        assert!(r.header("server").is_none(), "no server banner");
        let v = r.json();
        if r.status >= 400 {
            assert!(
                v["message_code"].is_string() && v["message"].is_string(),
                "{v}"
            );
        }
    }
}

#[tokio::test]
async fn malformed_bodies_are_400_and_change_nothing() {
    let app = TestApp::spawn().await;
    let valid = json!({"email": "x@example.com", "password": PASSWORD, "name": "X"}).to_string();
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"".to_vec(),
        format!("{valid}xyz").into_bytes(),
        format!("{valid}{valid}").into_bytes(),
        [b"\xef\xbb\xbf".as_slice(), valid.as_bytes()].concat(),
        br#"{"email": "x@example.com", "password": "pa\xffss-word-long", "name": "X"}"#.to_vec(),
        br#"{"email": 123, "password": "long enough pw", "name": "X"}"#.to_vec(),
        br#"{"email": ["x@example.com"], "password": "long enough pw", "name": "X"}"#.to_vec(),
        br#"{"email": "x@example.com", "email": "y@example.com", "password": "long enough pw", "name": "X"}"#.to_vec(),
        br#"{"email": "x@example.com", "password": 1e1000000, "name": "X"}"#.to_vec(),
        deep.into_bytes(),
        b"[]".to_vec(),
    ];
    for body in bodies {
        let r = app
            .request(
                "POST",
                "/v1/auth/register",
                &[("content-type", "application/json")],
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            r.status,
            400,
            "{:?}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert_eq!(r.code(), "invalid_request");
    }
    assert_eq!(
        app.login("x@example.com", PASSWORD).await.status,
        401,
        "nothing was created"
    );
}

#[tokio::test]
async fn bodies_must_be_declared_json() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "ct@example.com", "password": PASSWORD, "name": "C"}).to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("invalid/@@##"),
        Some("</><script>alert(1)</script>"),
        Some("text"),
        Some("text/[html]"),
        Some(""),
    ] {
        let headers: Vec<(&str, &str)> = ct.iter().map(|c| ("content-type", *c)).collect();
        let r = app
            .request(
                "POST",
                "/v1/auth/register",
                &headers,
                Some(body.clone().into_bytes()),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (415, "unsupported_media_type".to_string()),
            "{ct:?}"
        );
    }
    let r = app
        .request(
            "POST",
            "/v1/auth/register",
            &[("content-type", "application/json; charset=utf-8")],
            Some(body.into_bytes()),
        )
        .await;
    assert_eq!(r.status, 201, "a charset parameter is fine");
}

#[tokio::test]
async fn bodies_above_the_cap_are_413_by_length_or_by_stream() {
    let app = TestApp::spawn().await;
    let big = format!(
        r#"{{"email":"a@b.co","password":"{}","name":"N"}}"#,
        "p".repeat(70_000)
    );
    let r = app
        .request(
            "POST",
            "/v1/auth/register",
            &[("content-type", "application/json")],
            Some(big.clone().into_bytes()),
        )
        .await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large".to_string()));
    // Chunked, with no Content-Length.
    let chunked = format!(
        "POST /v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let raw = app.raw(chunked.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        raw.starts_with("HTTP/1.1 413"),
        "{}",
        &raw[..raw.len().min(200)]
    );
    assert_eq!(app.get("/healthz", None).await.status, 200, "still serving");
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = TestApp::spawn().await;
    let req = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-junk: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let raw = app.raw(req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        raw.starts_with("HTTP/1.1 431"),
        "{}",
        &raw[..raw.len().min(200)]
    );
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    let app = TestApp::spawn_with("[limits]\nheader_read_timeout = \"1s\"").await;
    let started = Instant::now();
    let raw = app
        .raw(
            b"GET /healthz HTTP/1.1\r\nhost: x\r\n",
            Duration::from_secs(10),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed by the header timeout"
    );
    assert!(!raw.starts_with("HTTP/1.1 200"), "{raw}");
}

#[tokio::test]
async fn a_body_that_never_arrives_is_408_before_any_hashing() {
    let app = TestApp::spawn_with("[limits]\nbody_read_timeout = \"1s\"").await;
    let req = "POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"email\":";
    let raw = app.raw(req.as_bytes(), Duration::from_secs(10)).await;
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(raw.contains("request_timeout"));
}

#[tokio::test]
async fn a_full_hashing_pool_answers_503_with_retry_after() {
    let app = Arc::new(
        TestApp::spawn_with(
            "[passwords]\nscrypt_log_n = 15\nmax_concurrent_hashes = 1\nqueue_timeout = \"1s\"",
        )
        .await,
    );
    let mut tasks = Vec::new();
    for i in 0..24 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "/v1/auth/register",
                json!({"email": format!("load{i}@example.com"), "password": PASSWORD, "name": "L"}),
            )
            .await
        }));
    }
    let mut busy = 0;
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            201 => {}
            503 => {
                busy += 1;
                assert_eq!(r.code(), "overloaded");
                assert!(r.header("retry-after").is_some());
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "some requests found the pool full");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.get("/healthz", None).await.json(),
        json!({"status": "ok"})
    );
    assert_eq!(
        app.get("/readyz", None).await.json(),
        json!({"status": "ready"})
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let app = Arc::new(TestApp::spawn_with("[passwords]\nscrypt_log_n = 16").await);
    let client = app.clone();
    let pending = tokio::spawn(async move {
        client
            .post(
                "/v1/auth/register",
                json!({"email": "late@example.com", "password": PASSWORD, "name": "L"}),
            )
            .await
            .status
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    app.stop().await;
    assert_eq!(
        pending.await.expect("task"),
        201,
        "the request in flight was answered"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with("[limits]\nheader_read_timeout = \"1s\"").await;
    let mut s = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the server closed the idle connection"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn idle_timeout_below_the_header_timeout_closes_idle_connections_sooner() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app =
        TestApp::spawn_with("[limits]\nheader_read_timeout = \"30s\"\nidle_timeout = \"1s\"").await;
    let mut s = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    assert!(s.read(&mut buf).await.expect("response") > 0);
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "closed after idle_timeout"
    );
}

#[tokio::test]
async fn requests_past_their_deadline_end_in_503_not_a_hang() {
    // One hashing slot, a long queue wait, and a short per-request deadline: the deadline, not
    // the queue timeout, ends the requests that wait.
    let app = Arc::new(
        TestApp::spawn_with(
            "[passwords]\nscrypt_log_n = 15\nmax_concurrent_hashes = 1\nqueue_timeout = \"60s\"\n[limits]\nrequest_timeout = \"1s\"",
        )
        .await,
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "/v1/auth/register",
                json!({"email": format!("late{i}@example.com"), "password": PASSWORD, "name": "L"}),
            )
            .await
        }));
    }
    let mut late = 0;
    for t in tasks {
        let r = t.await.expect("task");
        if r.status == 503 {
            late += 1;
            assert_eq!(r.code(), "overloaded");
            assert!(r.header("retry-after").is_some());
        } else {
            assert_eq!(r.status, 201);
        }
    }
    assert!(late > 0, "some requests outlived the deadline");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "none waited for the 60 s queue timeout"
    );
}

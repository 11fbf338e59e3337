//! Hostile and sloppy clients: CORS, request smuggling shapes, slowloris, races.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, PASSWORD};

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = TestApp::spawn().await;
    let r = app
        .request(
            "GET",
            "/healthz",
            &[("origin", "https://evil.example")],
            None,
        )
        .await;
    assert!(r.header("access-control-allow-origin").is_none());
    let r = app
        .request(
            "OPTIONS",
            "/v1/auth/login",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 405);
    assert!(r.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_allows_listed_origins_only_and_never_a_wildcard() {
    let app = TestApp::spawn_with("[cors]\nallowed_origins = [\"https://app.example.com\"]").await;
    let pre = app
        .request(
            "OPTIONS",
            "/v1/auth/login",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await;
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(pre.header("access-control-allow-methods"), Some("POST"));
    assert!(pre
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("authorization")));
    assert!(pre.header("access-control-allow-credentials").is_none());
    let t = app.register("cors@example.com").await;
    let auth = format!("Bearer {}", t.token);
    let r = app
        .request(
            "GET",
            "/v1/auth/me",
            &[
                ("origin", "https://app.example.com"),
                ("authorization", &auth),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let evil = app
        .request(
            "GET",
            "/v1/auth/me",
            &[("origin", "https://evil.example"), ("authorization", &auth)],
            None,
        )
        .await;
    assert!(
        evil.header("access-control-allow-origin").is_none(),
        "not echoed"
    );
    let evil_pre = app
        .request(
            "OPTIONS",
            "/v1/auth/login",
            &[("origin", "https://evil.example")],
            None,
        )
        .await;
    assert_eq!(evil_pre.status, 405);
}

#[tokio::test]
async fn ambiguous_message_framing_is_refused() {
    let app = TestApp::spawn().await;
    let body =
        r#"{"email":"smuggle@example.com","password":"correct horse battery staple","name":"S"}"#;
    for head in [
        format!(
            "content-length: {}\r\ncontent-length: {}\r\n",
            body.len(),
            body.len() + 1
        ),
        format!(
            "content-length: {}\r\ntransfer-encoding: chunked\r\n",
            body.len()
        ),
    ] {
        let req = format!(
            "POST /v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{head}\r\n{body}GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
        );
        let raw = app.raw(req.as_bytes(), Duration::from_secs(3)).await;
        assert!(
            !raw.starts_with("HTTP/1.1 2"),
            "{}",
            &raw[..raw.len().min(120)]
        );
        assert!(
            raw.matches("HTTP/1.1 ").count() <= 1,
            "no second request smuggled through: {raw}"
        );
    }
    assert_eq!(
        app.login("smuggle@example.com", PASSWORD).await.status,
        401,
        "nothing was created"
    );
}

#[tokio::test]
async fn twenty_concurrent_registrations_of_one_email_make_one_account() {
    let app = Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "/v1/auth/register",
                json!({"email": "twenty@example.com", "password": format!("twenty-password-{i}"), "name": "T"}),
            )
            .await
            .status
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.expect("task") {
            201 => created += 1,
            409 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn slowloris_connections_do_not_delay_an_honest_request() {
    let app = TestApp::spawn().await;
    let mut idle = Vec::new();
    // From another address than the honest client's: the per-address cap admits 64 of them and
    // refuses the rest at once; the global cap is never reached.
    for _ in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind");
        let mut s = socket.connect(app.addr).await.expect("connect");
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await;
        idle.push(s);
    }
    let started = Instant::now();
    let r = app.get("/healthz", None).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        took < Duration::from_millis(900),
        "honest request took {took:?}"
    );
    drop(idle);
}

#[tokio::test]
async fn passwords_are_compared_exactly_spaces_and_nul_included() {
    let app = TestApp::spawn().await;
    for (email, pw) in [
        ("space@example.com", "trailing space pw "),
        ("nul@example.com", "before\u{0}after-nul-pw"),
    ] {
        let r = app
            .post(
                "/v1/auth/register",
                json!({"email": email, "password": pw, "name": "N"}),
            )
            .await;
        assert_eq!(r.status, 201, "{pw:?}");
        assert_eq!(app.login(email, pw).await.status, 200);
        if pw.trim_end() != pw {
            assert_eq!(
                app.login(email, pw.trim_end()).await.status,
                401,
                "no trimming: {pw:?}"
            );
        }
        assert_eq!(app.login(email, &format!(" {pw}")).await.status, 401);
        if let Some((head, _)) = pw.split_once('\u{0}') {
            assert_eq!(
                app.login(email, head).await.status,
                401,
                "no truncation at NUL"
            );
        }
    }
}

#[tokio::test]
async fn odd_names_are_stored_verbatim_and_returned_as_json() {
    let app = TestApp::spawn().await;
    let name = "<script>alert(1)</script> \u{202e}evil 😀";
    let r = app
        .post(
            "/v1/auth/register",
            json!({"email": "odd@example.com", "password": PASSWORD, "name": name}),
        )
        .await;
    let t = crate::helpers::tokens(&r);
    let me = app.me(&t.token).await;
    assert_eq!(me.header("content-type"), Some("application/json"));
    assert_eq!(me.json()["name"], name);
}

#[tokio::test]
async fn error_responses_of_every_kind_carry_the_security_headers() {
    let app = TestApp::spawn_with(
        "[rate_limits]\nenabled = true\nlogin = [\"1/1h\"]\n[limits]\nbody_read_timeout = \"1s\"",
    )
    .await;
    let big = vec![b'x'; 70_000];
    let too_large = app
        .request(
            "POST",
            "/v1/auth/login",
            &[("content-type", "application/json")],
            Some(big),
        )
        .await;
    assert_eq!(too_large.status, 413);
    app.login("h@example.com", "wrong password here").await;
    let throttled = app.login("h@example.com", "wrong password here").await;
    assert_eq!(throttled.status, 429);
    for r in [&too_large, &throttled] {
        for (name, value) in [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
        ] {
            assert_eq!(r.header(name), Some(value), "{name} on {}", r.status);
        }
    }
    let raw = app
        .raw(
            b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n{",
            Duration::from_secs(10),
        )
        .await
        .to_ascii_lowercase();
    assert!(raw.starts_with("http/1.1 408"), "{raw}");
    assert!(
        raw.contains("x-content-type-options: nosniff") && raw.contains("cache-control: no-store"),
        "{raw}"
    );
}

/// Open a connection from `from` that sends half a request head and then holds its slot.
async fn hold(app: &TestApp, from: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind");
    let mut s = socket.connect(app.addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    s
}

/// What the server says to a brand-new connection from `from`, within a second.
async fn first_answer(app: &TestApp, from: &str) -> String {
    let mut s = hold(app, from).await;
    s.write_all(b"\r\n").await.expect("finish the request");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_hear_503_at_once() {
    let app =
        TestApp::spawn_with("[limits]\nmax_connections = 2\nheader_read_timeout = \"30s\"").await;
    let mut idle = vec![hold(&app, "127.0.0.1").await, hold(&app, "127.0.0.2").await];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = first_answer(&app, "127.0.0.3").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("\"message_code\":\"overloaded\""),
        "{refused}"
    );
    assert!(refused.contains("retry-after: 1"), "{refused}");
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.get("/healthz", None).await.status,
        200,
        "served once a slot frees"
    );
}

#[tokio::test]
async fn one_client_cannot_hold_every_connection() {
    let app = TestApp::spawn_with(
        "[limits]\nmax_connections_per_address = 2\nheader_read_timeout = \"30s\"",
    )
    .await;
    let _idle = [hold(&app, "127.0.0.9").await, hold(&app, "127.0.0.9").await];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = first_answer(&app, "127.0.0.9").await;
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused.contains("\"message_code\":\"rate_limited\""),
        "{refused}"
    );
    let served = first_answer(&app, "127.0.0.10").await;
    assert!(
        served.starts_with("HTTP/1.1 200"),
        "another client: {served}"
    );
    // A trusted proxy carries many clients: it is not capped.
    let proxy = TestApp::spawn_with(
        "[limits]\nmax_connections_per_address = 2\nheader_read_timeout = \"30s\"\n[rate_limits]\ntrusted_proxies = [\"127.0.0.9\"]",
    )
    .await;
    let _held = [
        hold(&proxy, "127.0.0.9").await,
        hold(&proxy, "127.0.0.9").await,
        hold(&proxy, "127.0.0.9").await,
    ];
    let served = first_answer(&proxy, "127.0.0.9").await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}

#[tokio::test]
async fn a_connection_is_closed_after_its_last_allowed_request() {
    let app = TestApp::spawn_with("[limits]\nmax_requests_per_connection = 3").await;
    let mut s = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    // Pipelined: the server answers three, closing the connection with the third.
    for _ in 0..5 {
        s.write_all(request).await.expect("write");
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .expect("read");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    assert_eq!(text.matches("connection: close").count(), 1, "{text}");
}

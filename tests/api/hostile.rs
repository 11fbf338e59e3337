//! Hostile and sloppy clients: CORS, request smuggling shapes, slowloris, races.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;

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
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .expect("write");
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

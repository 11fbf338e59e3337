//! Watching the server: metrics count real requests.

use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_real_requests_and_logins() {
    let app = TestApp::spawn().await;
    let t = app.register("metrics@example.com").await;
    app.login("metrics@example.com", PASSWORD).await;
    app.login("metrics@example.com", "wrong password here")
        .await;
    for _ in 0..3 {
        app.me(&t.token).await;
    }
    app.post_as(
        "/v1/auth/api-keys",
        Some(&t.token),
        json!({"name": "k", "scopes": ["databases:read"]}),
    )
    .await;
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(
        value(
            &text,
            r#"cloudheed_http_requests_total{route="me",status="200"}"#
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(&text, r#"cloudheed_logins_total{outcome="success"}"#),
        1.0
    );
    assert_eq!(
        value(&text, r#"cloudheed_logins_total{outcome="invalid"}"#),
        1.0
    );
    assert_eq!(
        value(&text, "cloudheed_sessions"),
        2.0,
        "register and login each opened one"
    );
    assert_eq!(value(&text, "cloudheed_api_keys"), 1.0);
    assert_eq!(value(&text, "cloudheed_users"), 1.0);
    assert!(value(&text, "cloudheed_database_size_bytes") > 0.0);
    assert!(text.contains("cloudheed_password_hash_queue"));
    assert!(
        text.contains(r#"cloudheed_http_request_duration_seconds_count{route="me"} 3"#),
        "{text}"
    );
    assert!(!text.contains(&t.token));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_served() {
    let app = TestApp::spawn().await;
    let r = app.get("/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path) in cloudheed_auth::testing::router::TABLE {
        let op = &doc["paths"][*path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is documented");
        if *method == "GET" {
            assert!(
                doc["paths"][*path]["head"].is_object(),
                "HEAD {path} is documented"
            );
        }
    }
    // And the other way round: everything documented (HEAD and the mailed-link pages too) is
    // served.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            let method = method.to_uppercase();
            let live = app
                .request(&method, &path.replace("{id}", "x-1"), &[], None)
                .await;
            assert!(
                ![404, 405].contains(&live.status),
                "{method} {path} is served: {}",
                live.status
            );
        }
    }
}

/// Send one admin command to the test server's socket.
fn admin(app: &TestApp, cmd: serde_json::Value) -> serde_json::Value {
    use std::io::{BufRead, BufReader, Write};
    let path = app.db_path().parent().expect("data dir").join("admin.sock");
    let mut s = std::os::unix::net::UnixStream::connect(path).expect("admin socket");
    s.write_all(format!("{cmd}\n").as_bytes()).expect("write");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("read");
    serde_json::from_str(&line).expect("json")
}

// Multi-threaded: the admin helper blocks its thread while the server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_leaves_the_jwks_once_its_tokens_have_expired() {
    let app = TestApp::spawn().await;
    let t = app.register("rotate@example.com").await;
    let before = app.get("/.well-known/jwks.json", None).await.json()["keys"]
        .as_array()
        .expect("keys")
        .len();
    assert_eq!(before, 1);
    let rotated = admin(&app, json!({"cmd": "keys_rotate"}));
    assert_eq!(rotated["ok"], true, "{rotated}");
    let jwks = app.get("/.well-known/jwks.json", None).await.json();
    assert_eq!(
        jwks["keys"].as_array().expect("keys").len(),
        2,
        "both while old tokens live"
    );
    assert_eq!(
        app.me(&t.token).await.status,
        200,
        "a token signed by the old key still works"
    );
    app.clock.advance(900 + 60);
    let jwks = app.get("/.well-known/jwks.json", None).await.json();
    assert_eq!(
        jwks["keys"].as_array().expect("keys").len(),
        1,
        "dropped once nothing it signed can be alive"
    );
    let bad = admin(&app, json!({"cmd": "no_such_command"}));
    assert_eq!(bad["ok"], false);
}

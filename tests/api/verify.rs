//! The verify endpoint, as other services and reverse proxies call it.

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_session_holds_every_configured_scope() {
    let app = TestApp::spawn().await;
    let t = app.register("vs@example.com").await;
    let r = app.get("/v1/auth/verify", Some(&t.token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"user_id": t.user_id, "credential": "session", "scopes": ["databases:read", "databases:write"]})
    );
    assert_eq!(r.header("x-auth-user-id"), Some(t.user_id.as_str()));
    assert_eq!(r.header("x-auth-credential"), Some("session"));
    assert_eq!(
        r.header("x-auth-scopes"),
        Some("databases:read databases:write")
    );
    let r = app
        .get("/v1/auth/verify?scope=databases:write", Some(&t.token))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_key_is_checked_against_the_scope_asked_for() {
    let app = TestApp::spawn().await;
    let t = app.register("vk@example.com").await;
    let v = app
        .post_as(
            "/v1/auth/api-keys",
            Some(&t.token),
            json!({"name": "ro", "scopes": ["databases:read"]}),
        )
        .await
        .json();
    let key = v["api_key"].as_str().expect("key");
    for ok in [
        "/v1/auth/verify",
        "/v1/auth/verify?scope=databases:read",
        "/v1/auth/verify?scope=databases%3Aread",
    ] {
        let r = app.get(ok, Some(key)).await;
        assert_eq!(r.status, 200, "{ok}");
        assert_eq!(r.header("x-auth-credential"), Some("api_key"));
        assert_eq!(r.header("x-auth-scopes"), Some("databases:read"));
        assert_eq!(r.header("x-auth-user-id"), Some(t.user_id.as_str()));
    }
    for denied in [
        "/v1/auth/verify?scope=databases:write",
        "/v1/auth/verify?scope=databases:read%20databases:write",
        "/v1/auth/verify?scope=databases:read&scope=databases:write",
        "/v1/auth/verify?scope=admin",
    ] {
        let r = app.get(denied, Some(key)).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "insufficient_scope".to_string()),
            "{denied}"
        );
        assert!(r.header("x-auth-user-id").is_none());
    }
    for malformed in [
        "scope=%zz",
        "scope=",
        "scope",
        "scope=+",
        "scope=databases:read&scope=",
    ] {
        let r = app
            .get(&format!("/v1/auth/verify?{malformed}"), Some(key))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_request".to_string()),
            "{malformed}: an empty or broken scope checks nothing, so it is refused"
        );
    }
    let r = app
        .get("/v1/auth/verify?sc%6Fpe=databases:write", Some(key))
        .await;
    assert_eq!(
        r.status, 403,
        "an encoded parameter name is still the scope"
    );
}

#[tokio::test]
async fn bad_or_missing_credentials_are_401() {
    let app = TestApp::spawn().await;
    let r = app.get("/v1/auth/verify", None).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized".to_string()));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(r.header("x-auth-user-id").is_none());
    assert_eq!(
        app.get("/v1/auth/verify", Some("nonsense")).await.status,
        401
    );
}

#[tokio::test]
async fn works_the_way_reverse_proxies_call_it() {
    // nginx auth_request, Traefik forwardAuth and Caddy forward_auth send a GET with the
    // client's headers (Authorization among them) plus X-Forwarded-*/X-Original-* headers, and
    // any body is ignored.
    let app = TestApp::spawn().await;
    let t = app.register("proxy@example.com").await;
    let key = app
        .post_as(
            "/v1/auth/api-keys",
            Some(&t.token),
            json!({"name": "svc", "scopes": ["databases:write"]}),
        )
        .await
        .json()["api_key"]
        .as_str()
        .expect("key")
        .to_string();
    let auth = format!("Bearer {key}");
    let headers = [
        ("authorization", auth.as_str()),
        ("x-forwarded-method", "POST"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "db.example.com"),
        ("x-forwarded-uri", "/v1/databases/42/query"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-original-uri", "/v1/databases/42/query"),
        ("x-original-method", "POST"),
        ("cookie", "session=abc"),
        ("content-type", "text/plain"),
        ("user-agent", "Caddy/2"),
    ];
    let r = app
        .request(
            "GET",
            "/v1/auth/verify?scope=databases:write",
            &headers,
            Some(b"not json at all".to_vec()),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("x-auth-user-id"), Some(t.user_id.as_str()));
    assert_eq!(r.header("x-auth-scopes"), Some("databases:write"));
    let r = app
        .request(
            "GET",
            "/v1/auth/verify?scope=databases:read",
            &headers,
            None,
        )
        .await;
    assert_eq!(r.status, 403, "proxies turn this into a 403 for the client");
}

//! API keys: creation, format, scopes, lifetimes, the per-user cap, listing, revocation, usage.

use serde_json::{json, Value};

use crate::helpers::{keys, ClockExt, TestApp, Tokens};

const ALL_SCOPES: [&str; 2] = ["databases:read", "databases:write"];

async fn create(app: &TestApp, token: &str, body: Value) -> crate::helpers::TestResponse {
    app.post_as("/v1/auth/api-keys", Some(token), body).await
}

/// A user and one key with `scopes`; returns (user tokens, key, key id).
async fn user_with_key(app: &TestApp, email: &str, scopes: &[&str]) -> (Tokens, String, String) {
    let t = app.register(email).await;
    let r = create(
        app,
        &t.token,
        json!({"name": "Production Key", "scopes": scopes}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let v = r.json();
    (
        t,
        v["api_key"].as_str().expect("key").into(),
        v["id"].as_str().expect("id").into(),
    )
}

#[tokio::test]
async fn create_returns_the_key_once_with_its_metadata() {
    let app = TestApp::spawn().await;
    let t = app.register("keys@example.com").await;
    let created_at = app.clock.now_for_tests();
    let r = create(
        &app,
        &t.token,
        json!({"name": " Production Key ", "scopes": ALL_SCOPES, "expires_in": "30d"}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(
        keys(&v),
        ["api_key", "expires_at", "id", "name", "prefix", "scopes"]
    );
    let key = v["api_key"].as_str().expect("key");
    assert!(key.starts_with("ch_live_") && key.len() >= 8 + 32, "{key}");
    assert!(key[8..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(v["id"].as_str().expect("id").starts_with("key-"));
    assert_eq!(v["name"], "Production Key");
    let prefix = v["prefix"].as_str().expect("prefix");
    assert!(
        prefix.len() >= 11 && key.starts_with(prefix) && prefix.len() < 16,
        "{prefix}"
    );
    assert_eq!(v["scopes"], json!(ALL_SCOPES));
    let expires =
        humantime::parse_rfc3339(v["expires_at"].as_str().expect("exp")).expect("rfc3339");
    let expires = expires
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs() as i64;
    assert_eq!(expires - created_at, 30 * 86_400);
}

#[tokio::test]
async fn expires_in_defaults_to_the_configured_lifetime() {
    let app = TestApp::spawn_with("[api_keys]\ndefault_expires_in = \"90d\"").await;
    let t = app.register("default@example.com").await;
    let now = app.clock.now_for_tests();
    let v = create(
        &app,
        &t.token,
        json!({"name": "k", "scopes": ["databases:read"]}),
    )
    .await
    .json();
    let expires =
        humantime::parse_rfc3339(v["expires_at"].as_str().expect("exp")).expect("rfc3339");
    let expires = expires
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs() as i64;
    assert_eq!(expires - now, 90 * 86_400);
}

#[tokio::test]
async fn a_key_authenticates_me_and_verify() {
    let app = TestApp::spawn().await;
    let (t, key, id) = user_with_key(&app, "use@example.com", &["databases:read"]).await;
    let me = app.me(&key).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["id"], t.user_id.as_str());
    let v = app.get("/v1/auth/verify", Some(&key)).await;
    assert_eq!(v.status, 200);
    assert_eq!(
        v.json(),
        json!({"user_id": t.user_id, "credential": "api_key", "scopes": ["databases:read"], "key_id": id})
    );
}

#[tokio::test]
async fn mistyped_invented_and_foreign_keys_are_refused() {
    let app = TestApp::spawn().await;
    let (_, key, _) = user_with_key(&app, "typo@example.com", &["databases:read"]).await;
    let mut typo = key.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    for bad in [
        typo.clone(),
        format!("{key}x"),
        key[..key.len() - 1].to_string(),
        format!("ch_live_{}", "A".repeat(38)),
        key.replacen("ch_live_", "ch_test_", 1),
    ] {
        let r = app.me(&bad).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthorized".to_string()),
            "{bad}"
        );
        assert_eq!(
            app.get("/v1/auth/verify", Some(&bad)).await.status,
            401,
            "{bad}"
        );
    }
    let in_query = app.get(&format!("/v1/auth/me?api_key={key}"), None).await;
    assert_eq!(
        in_query.status, 401,
        "keys are read from the Authorization header only"
    );
}

#[tokio::test]
async fn scopes_must_be_a_non_empty_subset_of_the_configured_ones() {
    let app = TestApp::spawn().await;
    let t = app.register("scopes@example.com").await;
    let many: Vec<String> = (0..3000).map(|i| format!("s{i}")).collect();
    for (scopes, code) in [
        (json!(["admin"]), "unknown_scope"),
        (json!(["*"]), "unknown_scope"),
        (
            json!(["databases:read", "databases:delete"]),
            "unknown_scope",
        ),
        (json!([]), "required"),
        (
            json!(["databases:read", "databases:read"]),
            "invalid_format",
        ),
        (json!(many), "invalid_format"),
    ] {
        let r = create(&app, &t.token, json!({"name": "k", "scopes": scopes})).await;
        assert_eq!(r.status, 422, "{scopes}");
        assert_eq!(
            r.json()["errors"],
            json!([{"field": "scopes", "message_code": code}]),
            "{scopes}"
        );
    }
    let r = create(&app, &t.token, json!({"name": "k"})).await;
    assert_eq!(
        r.json()["errors"],
        json!([{"field": "scopes", "message_code": "required"}])
    );
    let r = create(
        &app,
        &t.token,
        json!({"name": "k", "scopes": "databases:read"}),
    )
    .await;
    assert_eq!(r.status, 400, "a string is not a list");
    let list = app.get("/v1/auth/api-keys", Some(&t.token)).await.json();
    assert_eq!(list, json!({"api_keys": []}), "no key was created");
}

#[tokio::test]
async fn each_bad_expires_in_is_422() {
    let app = TestApp::spawn().await;
    let t = app.register("expiry@example.com").await;
    for bad in [
        "0d",
        "0s",
        "-1d",
        "+1d",
        "soon",
        "1.5h",
        "1h30m",
        "",
        " 1d",
        "99999999999999999999d",
        "3651d",
        "1y",
    ] {
        let r = create(
            &app,
            &t.token,
            json!({"name": "k", "scopes": ["databases:read"], "expires_in": bad}),
        )
        .await;
        assert_eq!(r.status, 422, "{bad:?}");
        assert_eq!(r.json()["errors"][0]["field"], "expires_in", "{bad:?}");
    }
    for bad in [json!(365), json!(-1), json!(["365d"])] {
        let r = create(
            &app,
            &t.token,
            json!({"name": "k", "scopes": ["databases:read"], "expires_in": bad}),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}");
    }
    for good in ["3650d", "12h", "90m", "45s"] {
        let r = create(
            &app,
            &t.token,
            json!({"name": "k", "scopes": ["databases:read"], "expires_in": good}),
        )
        .await;
        assert_eq!(r.status, 201, "{good}");
    }
}

#[tokio::test]
async fn names_are_required_and_bounded() {
    let app = TestApp::spawn().await;
    let t = app.register("names@example.com").await;
    for (name, code) in [
        (json!(null), "required"),
        (json!("  "), "required"),
        (json!("n".repeat(101)), "too_long"),
    ] {
        let r = create(
            &app,
            &t.token,
            json!({"name": name, "scopes": ["databases:read"]}),
        )
        .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"],
            json!([{"field": "name", "message_code": code}])
        );
    }
    let r = create(
        &app,
        &t.token,
        json!({"name": "n".repeat(100), "scopes": ["databases:read"]}),
    )
    .await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn the_per_user_cap_is_409() {
    let app = TestApp::spawn_with("[api_keys]\nmax_per_user = 2").await;
    let t = app.register("cap@example.com").await;
    let other = app.register("other@example.com").await;
    let body = json!({"name": "k", "scopes": ["databases:read"], "expires_in": "10m"});
    assert_eq!(create(&app, &t.token, body.clone()).await.status, 201);
    assert_eq!(create(&app, &t.token, body.clone()).await.status, 201);
    let r = create(&app, &t.token, body.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (409, "api_key_limit_reached".to_string())
    );
    assert_eq!(
        create(&app, &other.token, body.clone()).await.status,
        201,
        "the cap is per user"
    );
    // Expired keys do not count.
    app.clock.advance(600);
    assert_eq!(create(&app, &t.token, body).await.status, 201);
}

#[tokio::test]
async fn list_shows_only_the_callers_live_keys_newest_first_and_never_the_key() {
    let app = TestApp::spawn().await;
    let (t, key1, id1) = user_with_key(&app, "list@example.com", &["databases:read"]).await;
    user_with_key(&app, "someone@example.com", &["databases:read"]).await;
    app.clock.advance(1);
    let r = create(
        &app,
        &t.token,
        json!({"name": "Second", "scopes": ALL_SCOPES, "expires_in": "10m"}),
    )
    .await;
    let (key2, id2) = (
        r.json()["api_key"].as_str().expect("k").to_string(),
        r.json()["id"].as_str().expect("i").to_string(),
    );
    let r = app.get("/v1/auth/api-keys", Some(&t.token)).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        !text.contains(&key1) && !text.contains(&key2),
        "secrets never listed"
    );
    let v = r.json();
    let list = v["api_keys"].as_array().expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(
        keys(&list[0]),
        [
            "created_at",
            "expires_at",
            "id",
            "last_used_at",
            "name",
            "prefix",
            "scopes"
        ]
    );
    assert_eq!(
        (list[0]["id"].as_str(), list[1]["id"].as_str()),
        (Some(id2.as_str()), Some(id1.as_str()))
    );
    assert_eq!(list[0]["last_used_at"], Value::Null);
    assert!(key2.starts_with(list[0]["prefix"].as_str().expect("prefix")));
    app.clock.advance(600);
    let v = app.get("/v1/auth/api-keys", Some(&t.token)).await.json();
    assert_eq!(
        v["api_keys"].as_array().expect("list").len(),
        1,
        "expired keys leave the list"
    );
    assert_eq!(app.me(&key2).await.status, 401, "and are refused");
}

#[tokio::test]
async fn revoking_works_at_once_and_after_a_restart_and_only_for_the_owner() {
    let app = TestApp::spawn().await;
    let (t, key, id) = user_with_key(&app, "rev@example.com", &["databases:read"]).await;
    let intruder = app.register("intruder@example.com").await;
    let path = format!("/v1/auth/api-keys/{id}");
    let r = app.delete(&path, &intruder.token).await;
    assert_eq!(
        (r.status, r.code()),
        (404, "not_found".to_string()),
        "never 403: no probing"
    );
    assert_eq!(app.me(&key).await.status, 200);
    for bad in [
        "/v1/auth/api-keys/key-unknown",
        "/v1/auth/api-keys/..%2fme",
        "/v1/auth/api-keys/%00",
    ] {
        assert_eq!(app.delete(bad, &t.token).await.status, 404, "{bad}");
    }
    let r = app.delete(&path, &t.token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"message_code": "api_key_revoked"}));
    assert_eq!(
        app.me(&key).await.status,
        401,
        "refused on the very next request"
    );
    assert_eq!(app.delete(&path, &t.token).await.status, 404);
    let app = app.restart().await;
    assert_eq!(app.me(&key).await.status, 401, "and after a restart");
    assert_eq!(app.get("/v1/auth/verify", Some(&key)).await.status, 401);
}

#[tokio::test]
async fn last_used_at_appears_after_use_and_survives_a_restart() {
    let app = TestApp::spawn().await;
    let (t, key, _) = user_with_key(&app, "used@example.com", &["databases:read"]).await;
    app.clock.advance(60);
    let used_at = app.clock.now_for_tests();
    assert_eq!(app.get("/v1/auth/verify", Some(&key)).await.status, 200);
    // No listing before the restart: the usage reaches the store by the shutdown flush.
    let app = app.restart().await;
    let v = app.get("/v1/auth/api-keys", Some(&t.token)).await.json();
    let last = v["api_keys"][0]["last_used_at"]
        .as_str()
        .expect("last_used_at set")
        .to_string();
    assert_eq!(last, cloudheed_auth::clock::rfc3339(used_at));
    app.clock.advance(60);
    assert_eq!(app.me(&key).await.status, 200);
    let v = app.get("/v1/auth/api-keys", Some(&t.token)).await.json();
    assert_eq!(
        v["api_keys"][0]["last_used_at"],
        cloudheed_auth::clock::rfc3339(used_at + 60)
    );
}

#[tokio::test]
async fn keys_cannot_act_where_only_a_session_may() {
    let app = TestApp::spawn().await;
    let (t, key, id) = user_with_key(
        &app,
        "session-only@example.com",
        &["databases:read", "databases:write"],
    )
    .await;
    let sid = crate::helpers::jwt_part(&t.token, 1)["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let auth = format!("Bearer {key}");
    let json_auth = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let key_body = Some(
        json!({"name": "k2", "scopes": ["databases:read"]})
            .to_string()
            .into_bytes(),
    );
    let cases = [
        ("POST", "/v1/auth/api-keys".to_string(), key_body),
        ("GET", "/v1/auth/api-keys".to_string(), None),
        ("DELETE", format!("/v1/auth/api-keys/{id}"), None),
        ("POST", "/v1/auth/logout".to_string(), None),
        ("GET", "/v1/auth/sessions".to_string(), None),
        ("DELETE", format!("/v1/auth/sessions/{sid}"), None),
    ];
    for (method, path, body) in cases {
        let r = app.request(method, &path, &json_auth, body).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "session_required".to_string()),
            "{method} {path}"
        );
    }
    assert_eq!(
        app.me(&key).await.status,
        200,
        "the key still works, and was not revoked by itself"
    );
    assert_eq!(
        app.me(&t.token).await.status,
        200,
        "and the session was not ended"
    );
    let list = app.get("/v1/auth/api-keys", Some(&t.token)).await.json();
    assert_eq!(
        list["api_keys"].as_array().expect("list").len(),
        1,
        "no key was minted"
    );
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let (_, key, _) = user_with_key(&app, "scan@example.com", &["databases:read"]).await;
    assert_eq!(app.me(&key).await.status, 200);
    app.stop().await;
    let body = &key[8..];
    for entry in std::fs::read_dir(app.db_path().parent().expect("data dir")).expect("ls") {
        let path = entry.expect("entry").path();
        // The file mail transport's directory: no key is ever mailed.
        if path.is_dir() {
            continue;
        }
        let raw = std::fs::read(path).expect("read");
        assert!(
            !raw.windows(body.len()).any(|w| w == body.as_bytes()),
            "key found at rest"
        );
    }
}

#[tokio::test]
async fn using_a_key_never_writes_to_the_database() {
    if !crate::helpers::on_redb("using_a_key_never_writes_to_the_database") {
        return;
    }
    // No mail either: the key's creation notice would be written out of the outbox meanwhile.
    let app =
        TestApp::spawn_with("[api_keys]\nlast_used_flush = \"1h\"\n[email]\ntransport = \"none\"")
            .await;
    let (t, key, _) = user_with_key(&app, "nowrite@example.com", &["databases:read"]).await;
    let stat = || {
        let m = std::fs::metadata(app.db_path()).expect("stat");
        (m.modified().expect("mtime"), m.len())
    };
    let before = stat();
    for _ in 0..25 {
        assert_eq!(
            app.get("/v1/auth/verify?scope=databases:read", Some(&key))
                .await
                .status,
            200
        );
        assert_eq!(app.me(&key).await.status, 200);
        assert_eq!(app.me(&t.token).await.status, 200);
    }
    let list = app.get("/v1/auth/api-keys", Some(&t.token)).await.json();
    assert!(
        list["api_keys"][0]["last_used_at"].is_string(),
        "use is visible at once"
    );
    assert_eq!(stat(), before, "no write for any of it, listing included");
}

#[tokio::test]
async fn keys_made_within_one_second_are_listed_newest_first() {
    let app = TestApp::spawn().await;
    let t = app.register("order@example.com").await;
    let mut made = Vec::new();
    for i in 0..6 {
        let r = app
            .post_as(
                "/v1/auth/api-keys",
                Some(&t.token),
                json!({"name": format!("k{i}"), "scopes": ["databases:read"]}),
            )
            .await;
        assert_eq!(r.status, 201);
        made.push(r.json()["id"].as_str().expect("id").to_string());
    }
    let v = app.get("/v1/auth/api-keys", Some(&t.token)).await.json();
    let listed: Vec<String> = v["api_keys"]
        .as_array()
        .expect("list")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_string())
        .collect();
    made.reverse();
    assert_eq!(listed, made);
}

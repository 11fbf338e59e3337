//! The OpenAPI document against the live server: the rules it states are the rules enforced.
//! (CI fuzzes the whole document with Schemathesis, `.ci/schemathesis`; these are the few
//! checks fast enough for every `cargo test`.)

use serde_json::{json, Value};

use cloudheed_auth::testing::domain::password::MAX_PASSWORD_CHARS;
use cloudheed_auth::testing::domain::types::{MAX_KEY_NAME_CHARS, MAX_NAME_CHARS};

use crate::helpers::{TestApp, TestResponse, PASSWORD};

async fn document(app: &TestApp) -> Value {
    let r = app.get("/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    r.json()
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["components"]["schemas"][name];
    assert!(s.is_object(), "schema {name}");
    s
}

/// The message codes the document lists for one status of one operation.
fn documented_codes(doc: &Value, method: &str, path: &str, status: u16) -> Vec<String> {
    let mut response = &doc["paths"][path][method]["responses"][status.to_string()];
    if let Some(r) = response["$ref"].as_str() {
        response = &doc["components"]["responses"][r.rsplit('/').next().expect("name")];
    }
    let schema = &response["content"]["application/json"]["schema"];
    schema["allOf"][1]["properties"]["message_code"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} {status} is documented"))
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect()
}

/// The answer is one the document lists, code included.
fn assert_documented(doc: &Value, method: &str, path: &str, r: &TestResponse) {
    let codes = documented_codes(doc, method, path, r.status);
    assert!(
        codes.contains(&r.code()),
        "{method} {path}: {} {} is not among {codes:?}",
        r.status,
        r.code()
    );
}

/// Every operation with a JSON body, and the schema its body refers to.
fn json_body_operations(doc: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let body = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
            if let Some(r) = body.as_str() {
                let name = r.rsplit('/').next().expect("name").to_string();
                out.push((method.to_uppercase(), path.clone(), name));
            }
        }
    }
    out
}

async fn create_key(app: &TestApp, token: &str, body: Value) -> TestResponse {
    app.post_as("/v1/auth/api-keys", Some(token), body).await
}

async fn register_with(app: &TestApp, email: &str, password: &str, name: &str) -> TestResponse {
    app.post(
        "/v1/auth/register",
        json!({"email": email, "password": password, "name": name}),
    )
    .await
}

#[tokio::test]
async fn the_scope_enum_is_the_configured_scope_list() {
    let app = TestApp::spawn_with(
        "[api_keys]\nscopes = [\"reports:read\", \"reports:write\", \"billing\"]\n",
    )
    .await;
    let doc = document(&app).await;
    let scopes = &schema(&doc, "CreateApiKeyRequest")["properties"]["scopes"];
    assert_eq!(
        scopes["items"]["enum"],
        json!(["reports:read", "reports:write", "billing"])
    );
    assert_eq!(scopes["minItems"], 1);
    assert_eq!(scopes["uniqueItems"], true);
    let t = app.register("scopes@example.com").await;
    for scope in scopes["items"]["enum"].as_array().expect("enum") {
        let r = create_key(&app, &t.token, json!({"name": "k", "scopes": [scope]})).await;
        assert_eq!(r.status, 201, "{scope}");
    }
    for (bad, code) in [
        (json!(["databases:read"]), "unknown_scope"),
        (json!([]), "required"),
        (json!(["billing", "billing"]), "invalid_format"),
    ] {
        let r = create_key(&app, &t.token, json!({"name": "k", "scopes": bad})).await;
        assert_eq!(r.status, 422, "{bad}");
        assert_eq!(r.json()["errors"][0]["message_code"], code, "{bad}");
        assert_documented(&doc, "post", "/v1/auth/api-keys", &r);
    }
}

#[tokio::test]
async fn passwords_at_the_documented_lengths_pass_and_one_beyond_fails() {
    let app = TestApp::spawn_with("[passwords]\nmin_length = 12\n").await;
    let doc = document(&app).await;
    for (schema_name, field) in [
        ("RegisterRequest", "password"),
        ("PasswordChangeRequest", "new_password"),
        ("ResetPasswordRequest", "password"),
    ] {
        let p = &schema(&doc, schema_name)["properties"][field];
        assert_eq!(p["minLength"], 12, "{schema_name}: from the config");
        assert_eq!(p["maxLength"], MAX_PASSWORD_CHARS, "{schema_name}");
    }
    let p = &schema(&doc, "RegisterRequest")["properties"]["password"];
    let min = p["minLength"].as_u64().expect("minLength") as usize;
    let max = p["maxLength"].as_u64().expect("maxLength") as usize;
    // Code points, not bytes: a multi-byte character counts once.
    let password = |n: usize| "kq9Zwé".chars().cycle().take(n).collect::<String>();
    for (n, want) in [
        (min - 1, Err("too_short")),
        (min, Ok(())),
        (max, Ok(())),
        (max + 1, Err("too_long")),
    ] {
        let r = register_with(&app, &format!("len{n}@example.com"), &password(n), "Len").await;
        match want {
            Ok(()) => assert_eq!(r.status, 201, "{n}: {:?}", r.body),
            Err(code) => {
                assert_eq!(r.status, 422, "{n}");
                assert_eq!(
                    r.json()["errors"],
                    json!([{"field": "password", "message_code": code}])
                );
                assert_documented(&doc, "post", "/v1/auth/register", &r);
            }
        }
    }
}

#[tokio::test]
async fn names_are_bounded_after_trimming_as_documented() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let name = &schema(&doc, "RegisterRequest")["properties"]["name"];
    assert_eq!(name["minLength"], 1);
    let pattern = name["pattern"].as_str().expect("pattern");
    assert!(
        pattern.contains(&format!("{{0,{}}}", MAX_NAME_CHARS - 2)),
        "{pattern}"
    );
    let long = "é".repeat(MAX_NAME_CHARS);
    for (i, (name, status)) in [
        (long.clone(), 201),
        (format!("  {long}\t\n"), 201),
        (format!("{long}x"), 422),
        (" ".to_string(), 422),
        ("a\u{7}b".to_string(), 422),
    ]
    .into_iter()
    .enumerate()
    {
        let r = register_with(&app, &format!("name{i}@example.com"), PASSWORD, &name).await;
        assert_eq!(r.status, status, "{name:?}");
    }

    let key_name = &schema(&doc, "CreateApiKeyRequest")["properties"]["name"];
    let pattern = key_name["pattern"].as_str().expect("pattern");
    assert!(pattern.contains(&format!("{{0,{}}}", MAX_KEY_NAME_CHARS - 2)));
    let t = app.register("keys@example.com").await;
    for (n, status) in [(MAX_KEY_NAME_CHARS, 201), (MAX_KEY_NAME_CHARS + 1, 422)] {
        let body = json!({"name": "k".repeat(n), "scopes": ["databases:read"]});
        assert_eq!(create_key(&app, &t.token, body).await.status, status, "{n}");
    }
}

#[tokio::test]
async fn the_longest_lifetime_comes_from_the_config() {
    let app =
        TestApp::spawn_with("[api_keys]\nmax_expires_in = \"10d\"\ndefault_expires_in = \"1d\"\n")
            .await;
    let doc = document(&app).await;
    let expires_in = &schema(&doc, "CreateApiKeyRequest")["properties"]["expires_in"];
    let pattern = expires_in["pattern"].as_str().expect("pattern");
    // 10 days: at most 10 d, 240 h, 14400 m or 864000 s, leading zeros allowed.
    for part in ["(?:10))d", "|240))h", "|14400))m", "|864000))s"] {
        assert!(pattern.contains(part), "{part} in {pattern}");
    }
    let t = app.register("lifetime@example.com").await;
    for (expires_in, status) in [
        ("10d", 201),
        ("0010d", 201),
        ("240h", 201),
        ("864000s", 201),
        ("11d", 422),
        ("241h", 422),
        ("0d", 422),
        ("1w", 422),
    ] {
        let body = json!({"name": "k", "scopes": ["databases:read"], "expires_in": expires_in});
        let r = create_key(&app, &t.token, body).await;
        assert_eq!(r.status, status, "{expires_in}");
    }
}

#[tokio::test]
async fn request_schemas_are_closed_and_json_only_where_the_server_is() {
    let app = TestApp::spawn().await;
    let t = app.register("closed@example.com").await;
    let auth = format!("Bearer {}", t.token);
    let doc = document(&app).await;
    let ops = json_body_operations(&doc);
    assert_eq!(ops.len(), 14, "{ops:?}");
    for (method, path, name) in ops {
        assert_eq!(
            schema(&doc, &name)["additionalProperties"],
            false,
            "{name}: its struct is deny_unknown_fields"
        );
        let json_type = [
            ("content-type", "application/json"),
            ("authorization", &auth),
        ];
        let r = app
            .request(
                &method,
                &path,
                &json_type,
                Some(br#"{"no_such_field": 1}"#.to_vec()),
            )
            .await;
        assert_eq!(r.status, 400, "{method} {path}");
        assert_documented(&doc, &method.to_lowercase(), &path, &r);
        let text = [("content-type", "text/plain"), ("authorization", &auth)];
        let r = app
            .request(&method, &path, &text, Some(b"{}".to_vec()))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (415, "unsupported_media_type".to_string()),
            "{method} {path}"
        );
        assert_documented(&doc, &method.to_lowercase(), &path, &r);
    }
    assert_eq!(app.me(&t.token).await.status, 200, "nothing above acted");
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_400_even_where_it_is_not_needed() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    // A fresh session needs no password for 2FA setup, so the field is never read.
    let t = app.register("types@example.com").await;
    for bad in [json!(5), json!(["x"]), json!({"p": "x"}), json!(true)] {
        let r = app
            .post_as(
                "/v1/auth/2fa/setup",
                Some(&t.token),
                json!({"password": bad}),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_request".to_string()),
            "{bad}"
        );
    }
    let r = app
        .post_as(
            "/v1/auth/login",
            None,
            json!({"email": "types@example.com", "password": PASSWORD, "totp_code": 123456}),
        )
        .await;
    assert_eq!(r.status, 400, "2FA is off, yet the code must be a string");
    let r = create_key(
        &app,
        &t.token,
        json!({"name": "k", "scopes": ["databases:read"], "expires_in": 30}),
    )
    .await;
    assert_eq!(r.status, 400);
    // null is leaving the field out, and the document says so.
    let password = &schema(&doc, "TotpSetupRequest")["properties"]["password"];
    assert_eq!(password["type"], json!(["string", "null"]));
    let r = app
        .post_as(
            "/v1/auth/2fa/setup",
            Some(&t.token),
            json!({"password": null}),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn security_and_its_refusals_follow_the_access_level() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let security = |path: &str, method: &str| doc["paths"][path][method]["security"].clone();
    assert_eq!(security("/v1/auth/register", "post"), json!([]));
    assert_eq!(security("/healthz", "get"), json!([]));
    assert_eq!(
        security("/v1/auth/api-keys", "post"),
        json!([{"session": []}])
    );
    assert_eq!(
        security("/v1/auth/me", "get"),
        json!([{"session": []}, {"api_key": []}])
    );
    assert_eq!(
        security("/v1/auth/me", "head"),
        security("/v1/auth/me", "get")
    );

    let t = app.register("security@example.com").await;
    let key = create_key(
        &app,
        &t.token,
        json!({"name": "k", "scopes": ["databases:read"]}),
    )
    .await
    .json()["api_key"]
        .as_str()
        .expect("key")
        .to_string();
    let r = app.get("/v1/auth/api-keys", Some(&key)).await;
    assert_eq!(r.code(), "session_required");
    assert_documented(&doc, "get", "/v1/auth/api-keys", &r);
    assert_eq!(app.get("/v1/auth/me", Some(&key)).await.status, 200);
    let r = app.get("/v1/auth/me", None).await;
    assert_documented(&doc, "get", "/v1/auth/me", &r);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = app.get("/v1/auth/verify?scope=", Some(&key)).await;
    assert_documented(&doc, "get", "/v1/auth/verify", &r);
    let r = app
        .get("/v1/auth/verify?scope=databases:write", Some(&key))
        .await;
    assert_documented(&doc, "get", "/v1/auth/verify", &r);
}

//! Register, login and `/me`: shapes, validation, uniqueness, credentials, re-hashing.

use serde_json::json;

use crate::helpers::{keys, tokens, TestApp, PASSWORD};

#[tokio::test]
async fn register_returns_201_with_tokens_and_the_user() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/v1/auth/register",
            json!({"email": "Alice@Example.com", "password": PASSWORD, "name": " Alice "}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(keys(&v), ["refresh_token", "token", "user"]);
    assert_eq!(keys(&v["user"]), ["email", "id", "name"]);
    assert!(v["user"]["id"].as_str().expect("id").starts_with("user-"));
    assert_eq!(v["user"]["email"], "Alice@Example.com");
    assert_eq!(v["user"]["name"], "Alice");
}

#[tokio::test]
async fn me_returns_the_full_profile() {
    let app = TestApp::spawn().await;
    let t = app.register("bob@example.com").await;
    let r = app.me(&t.token).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        keys(&v),
        [
            "company",
            "created_at",
            "email",
            "email_verified_at",
            "id",
            "name",
            "plan",
            "two_factor_enabled"
        ]
    );
    assert_eq!(v["id"], t.user_id.as_str());
    assert_eq!(v["email"], "bob@example.com");
    assert_eq!(v["company"], serde_json::Value::Null);
    assert_eq!(v["plan"], "free");
    assert_eq!(v["two_factor_enabled"], false);
    assert_eq!(v["email_verified_at"], serde_json::Value::Null);
    let created = v["created_at"].as_str().expect("created_at");
    assert!(
        humantime::parse_rfc3339(created).is_ok() && created.ends_with('Z'),
        "{created}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn company_and_the_configured_plan_appear_in_me() {
    let app = TestApp::spawn_with("[accounts]\ndefault_plan = \"pro\"").await;
    let r = app
        .post(
            "/v1/auth/register",
            json!({"email": "c@example.com", "password": PASSWORD, "name": "C", "company": "Acme Corp"}),
        )
        .await;
    let v = app.me(&tokens(&r).token).await.json();
    assert_eq!(v["company"], "Acme Corp");
    assert_eq!(v["plan"], "pro");
}

#[tokio::test]
async fn clients_cannot_set_plan_id_or_verification() {
    let app = TestApp::spawn().await;
    for extra in [
        json!({"plan": "enterprise"}),
        json!({"id": "user-admin"}),
        json!({"email_verified_at": "2026-01-01T00:00:00Z"}),
        json!({"two_factor_enabled": true}),
    ] {
        let mut body = json!({"email": "m@example.com", "password": PASSWORD, "name": "M"});
        body.as_object_mut()
            .expect("obj")
            .extend(extra.as_object().expect("obj").clone());
        let r = app.post("/v1/auth/register", body).await;
        assert_eq!(r.status, 400, "{extra}");
        assert_eq!(r.code(), "invalid_request");
    }
    assert_eq!(
        app.login("m@example.com", PASSWORD).await.status,
        401,
        "nothing was created"
    );
}

#[tokio::test]
async fn email_is_unique_case_insensitively() {
    let app = TestApp::spawn().await;
    app.register("dup@example.com").await;
    for email in ["dup@example.com", "DUP@Example.COM", "  dup@example.com "] {
        let r = app
            .post(
                "/v1/auth/register",
                json!({"email": email, "password": "another-password-1", "name": "X"}),
            )
            .await;
        assert_eq!(r.status, 409, "{email}");
        assert_eq!(r.code(), "email_taken");
    }
    assert_eq!(app.login("dup@example.com", PASSWORD).await.status, 200);
    assert_eq!(
        app.login("Dup@Example.com", "another-password-1")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_one_account() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "/v1/auth/register",
                json!({"email": "race@example.com", "password": format!("race-password-{i}"), "name": "R"}),
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn validation_reports_every_field_at_once() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/v1/auth/register",
            json!({"email": "not-an-email", "password": "short", "name": "  "}),
        )
        .await;
    assert_eq!(r.status, 422);
    let v = r.json();
    assert_eq!(v["message_code"], "validation_failed");
    let mut errors: Vec<(String, String)> = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().expect("f").into(),
                e["message_code"].as_str().expect("c").into(),
            )
        })
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            ("email".to_string(), "invalid_format".to_string()),
            ("name".to_string(), "required".to_string()),
            ("password".to_string(), "too_short".to_string()),
        ]
    );
}

async fn field_error(app: &TestApp, body: serde_json::Value) -> (u16, String, String) {
    let r = app.post("/v1/auth/register", body).await;
    let v = r.json();
    let e = &v["errors"][0];
    (
        r.status,
        e["field"].as_str().unwrap_or_default().into(),
        e["message_code"].as_str().unwrap_or_default().into(),
    )
}

#[tokio::test]
async fn each_field_rule_is_enforced() {
    let app = TestApp::spawn().await;
    let long_email = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
    let cases = [
        (
            json!({"password": PASSWORD, "name": "N"}),
            "email",
            "required",
        ),
        (
            json!({"email": "a@b.co", "name": "N"}),
            "password",
            "required",
        ),
        (
            json!({"email": "a@b.co", "password": PASSWORD}),
            "name",
            "required",
        ),
        (
            json!({"email": "a@@b.co", "password": PASSWORD, "name": "N"}),
            "email",
            "invalid_format",
        ),
        (
            json!({"email": "a@b.co\r\nBcc:x@y.z", "password": PASSWORD, "name": "N"}),
            "email",
            "invalid_format",
        ),
        (
            json!({"email": long_email, "password": PASSWORD, "name": "N"}),
            "email",
            "too_long",
        ),
        (
            json!({"email": "a@b.co", "password": "Tr0ub4d", "name": "N"}),
            "password",
            "too_short",
        ),
        (
            json!({"email": "a@b.co", "password": "😀😀😀😀😀😀😀", "name": "N"}),
            "password",
            "too_short",
        ),
        (
            json!({"email": "a@b.co", "password": "x9".repeat(64) + "y", "name": "N"}),
            "password",
            "too_long",
        ),
        (
            json!({"email": "a@b.co", "password": "password", "name": "N"}),
            "password",
            "password_too_common",
        ),
        (
            json!({"email": "a@b.co", "password": "12345678", "name": "N"}),
            "password",
            "password_too_common",
        ),
        (
            json!({"email": "a@b.co", "password": "aaaaaaaa", "name": "N"}),
            "password",
            "password_too_common",
        ),
        (
            json!({"email": "alice.w@b.co", "password": "alice.w@b.co", "name": "N"}),
            "password",
            "password_too_common",
        ),
        (
            json!({"email": "a@b.co", "password": PASSWORD, "name": "n".repeat(201)}),
            "name",
            "too_long",
        ),
        (
            json!({"email": "a@b.co", "password": PASSWORD, "name": "N", "company": "c".repeat(201)}),
            "company",
            "too_long",
        ),
    ];
    for (body, field, code) in cases {
        let got = field_error(&app, body.clone()).await;
        assert_eq!(got, (422, field.to_string(), code.to_string()), "{body}");
    }
    assert_eq!(
        app.login("a@b.co", PASSWORD).await.status,
        401,
        "no account was created"
    );
}

#[tokio::test]
async fn passwords_of_8_emoji_and_128_characters_work() {
    let app = TestApp::spawn().await;
    for (email, pw) in [
        ("e@example.com", "😀😁😂🤣😃😄😅😆".to_string()),
        ("l@example.com", "k9x".repeat(42) + "zz"),
    ] {
        let r = app
            .post(
                "/v1/auth/register",
                json!({"email": email, "password": pw, "name": "N"}),
            )
            .await;
        assert_eq!(r.status, 201, "{pw}");
        assert_eq!(app.login(email, &pw).await.status, 200);
        // No truncation, no normalisation: a prefix or one more character is a different password.
        assert_eq!(app.login(email, &pw[..pw.len() - 4]).await.status, 401);
        assert_eq!(app.login(email, &format!("{pw}!")).await.status, 401);
    }
}

#[tokio::test]
async fn login_returns_tokens_and_the_two_factor_flag() {
    let app = TestApp::spawn().await;
    let reg = app.register("login@example.com").await;
    let r = app.login("  LOGIN@example.com ", PASSWORD).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(keys(&v), ["refresh_token", "token", "user"]);
    assert_eq!(
        keys(&v["user"]),
        ["email", "id", "name", "two_factor_enabled"]
    );
    assert_eq!(v["user"]["id"], reg.user_id.as_str());
    assert_eq!(v["user"]["two_factor_enabled"], false);
    assert_eq!(
        app.me(v["token"].as_str().expect("token")).await.status,
        200
    );
}

#[tokio::test]
async fn unknown_email_and_wrong_password_answer_identically() {
    let app = TestApp::spawn().await;
    app.register("known@example.com").await;
    let wrong = app.login("known@example.com", "wrong password here").await;
    let unknown = app.login("nobody@example.com", "wrong password here").await;
    let bad_shape = app.login("not an email", "wrong password here").await;
    let too_long = app.login("known@example.com", &"p".repeat(129)).await;
    for r in [&wrong, &unknown, &bad_shape, &too_long] {
        assert_eq!(r.status, 401);
        assert_eq!(r.body, wrong.body, "byte-for-byte the same body");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(r.code(), "invalid_credentials");
    }
}

#[tokio::test]
async fn login_needs_both_fields() {
    let app = TestApp::spawn().await;
    let r = app.post("/v1/auth/login", json!({"email": "a@b.co"})).await;
    assert_eq!((r.status, r.code()), (422, "validation_failed".to_string()));
    let r = app
        .post(
            "/v1/auth/login",
            json!({"email": "a@b.co", "password": 12345678}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request".to_string()));
}

#[tokio::test]
async fn login_rehashes_when_the_configured_cost_changes() {
    let app = TestApp::spawn().await;
    app.register("cost@example.com").await;
    let app = app.restart_with("[passwords]\nscrypt_log_n = 11").await;
    assert_eq!(app.login("cost@example.com", PASSWORD).await.status, 200);
    let hash = stored_hash(&app, "cost@example.com").await;
    assert!(hash.starts_with("$scrypt$ln=11,r=8,p=1$"), "{hash}");
    let app = app.restart_with("[passwords]\nscrypt_log_n = 11").await;
    assert_eq!(
        app.login("cost@example.com", PASSWORD).await.status,
        200,
        "the new hash verifies"
    );
}

/// A user's stored hash, read through the running server's store (either backend).
async fn stored_hash(app: &TestApp, email: &str) -> String {
    let user = app
        .state()
        .store
        .user_by_email(email.to_string())
        .await
        .expect("read")
        .expect("user");
    user.password_hash.expose().to_string()
}

#[tokio::test]
async fn passwords_are_stored_only_as_salted_scrypt_hashes() {
    let app = TestApp::spawn().await;
    app.register("s1@example.com").await;
    app.register("s2@example.com").await;
    let (h1, h2) = (
        stored_hash(&app, "s1@example.com").await,
        stored_hash(&app, "s2@example.com").await,
    );
    assert!(h1.starts_with("$scrypt$ln=10,r=8,p=1$"));
    assert_ne!(h1, h2, "same password, different salts");
    let raw = app.stored_bytes().await;
    assert!(!raw
        .windows(PASSWORD.len())
        .any(|w| w == PASSWORD.as_bytes()));
}

#[tokio::test]
async fn a_login_for_an_unknown_email_spends_a_hash_too() {
    // With one slot and a cost that takes a while, a burst of unknown-email logins can only find
    // the pool full if each of them hashes; answering them without a hash would be a timing oracle.
    let app = std::sync::Arc::new(
        TestApp::spawn_with(
            "[passwords]\nscrypt_log_n = 15\nmax_concurrent_hashes = 1\nqueue_timeout = \"1s\"",
        )
        .await,
    );
    let mut tasks = Vec::new();
    for i in 0..24 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.login(&format!("ghost{i}@example.com"), "some wrong password")
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "unknown emails queued for the hashing pool: {statuses:?}"
    );
}

#[tokio::test]
async fn no_bearer_secret_is_stored_in_the_clear() {
    let app = TestApp::spawn().await;
    let t = app.register("clear@example.com").await;
    let rotated = tokens(&app.refresh(&t.refresh_token).await);
    let key = app
        .post_as(
            "/v1/auth/api-keys",
            Some(&rotated.token),
            json!({"name": "k", "scopes": ["databases:read"]}),
        )
        .await
        .json()["api_key"]
        .as_str()
        .expect("api_key")
        .to_string();
    let raw = app.stored_bytes().await;
    for secret in [
        &t.refresh_token,
        &rotated.refresh_token,
        &t.token,
        &rotated.token,
        &key,
    ] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "found in the database file"
        );
    }
}

#[tokio::test]
async fn a_damaged_record_is_a_500_that_shows_nothing() {
    if !crate::helpers::on_redb("a_damaged_record_is_a_500_that_shows_nothing") {
        return;
    }
    let app = TestApp::spawn().await;
    let t = app.register("damaged@example.com").await;
    app.stop().await;
    {
        const USERS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("users");
        let db = redb::Database::create(app.db_path()).expect("open");
        let tx = db.begin_write().expect("tx");
        tx.open_table(USERS)
            .expect("users")
            .insert(t.user_id.as_str(), b"\xff\x00 not cbor".as_slice())
            .expect("insert");
        tx.commit().expect("commit");
    }
    let app = app.restart().await;
    let r = app.me(&t.token).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        json!({"message_code": "internal_error", "message": "An internal error occurred."})
    );
    assert!(
        r.header("x-request-id").is_some(),
        "the reference to find the cause in the log"
    );
    let r = app.login("damaged@example.com", PASSWORD).await;
    assert_eq!(r.status, 500);
}

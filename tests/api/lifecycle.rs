//! A user's own password change and account deletion.

use serde_json::{json, Value};

use crate::helpers::{tokens, totp_at, ClockExt, TestApp, TestResponse, PASSWORD};
use crate::two_factor::enabled_user;

const NEW_PASSWORD: &str = "a brand new passphrase 42";

async fn change(app: &TestApp, token: &str, current: &str, new: &str) -> TestResponse {
    app.post_as(
        "/v1/auth/password/change",
        Some(token),
        json!({"current_password": current, "new_password": new}),
    )
    .await
}

async fn delete_me(app: &TestApp, token: &str, body: Value) -> TestResponse {
    let auth = format!("Bearer {token}");
    app.request(
        "DELETE",
        "/v1/auth/me",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Some(body.to_string().into_bytes()),
    )
    .await
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let app = TestApp::spawn().await;
    let here = app.register("change@example.com").await;
    let other = tokens(&app.login("change@example.com", PASSWORD).await);
    let r = change(&app, &here.token, "not my password at all", NEW_PASSWORD).await;
    assert_eq!((r.status, r.code()), (422, "invalid_password".to_string()));
    let r = change(&app, &here.token, PASSWORD, "short").await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errors"][0]["field"], "new_password");
    let r = change(&app, &here.token, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json(), json!({"message_code": "password_changed"}));
    assert_eq!(app.me(&here.token).await.status, 200, "this session stays");
    assert_eq!(app.me(&other.token).await.status, 401, "the other ended");
    assert_eq!(app.refresh(&other.refresh_token).await.status, 401);
    assert_eq!(app.login("change@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        app.login("change@example.com", NEW_PASSWORD).await.status,
        200
    );
}

#[tokio::test]
async fn a_wrong_current_password_is_a_guess_under_the_account_lock() {
    let app = TestApp::spawn().await;
    let t = app.register("guess-change@example.com").await;
    for _ in 0..5 {
        let r = change(&app, &t.token, "wrong password here", NEW_PASSWORD).await;
        assert_eq!(r.status, 422);
    }
    let r = change(&app, &t.token, PASSWORD, NEW_PASSWORD).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited".to_string()));
}

#[tokio::test]
async fn api_keys_cannot_change_the_password_or_delete_the_account() {
    let app = TestApp::spawn().await;
    let t = app.register("keyonly@example.com").await;
    let key = crate::helpers::create_key(&app, &t.token, &["databases:read"]).await;
    let r = change(&app, &key, PASSWORD, NEW_PASSWORD).await;
    assert_eq!((r.status, r.code()), (403, "session_required".to_string()));
    let r = delete_me(&app, &key, json!({"password": PASSWORD})).await;
    assert_eq!((r.status, r.code()), (403, "session_required".to_string()));
}

#[tokio::test]
async fn deleting_the_account_removes_everything_and_frees_the_email() {
    let app = TestApp::spawn().await;
    let t = app.register("gone@example.com").await;
    let other = tokens(&app.login("gone@example.com", PASSWORD).await);
    let key = crate::helpers::create_key(&app, &t.token, &["databases:read"]).await;
    assert_eq!(app.get("/v1/auth/verify", Some(&key)).await.status, 200);
    let r = delete_me(&app, &t.token, json!({"password": "not the password"})).await;
    assert_eq!((r.status, r.code()), (422, "invalid_password".to_string()));
    let r = delete_me(&app, &t.token, json!({})).await;
    assert_eq!(r.status, 422, "password required");
    let r = delete_me(&app, &t.token, json!({"password": PASSWORD})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json(), json!({"message_code": "account_deleted"}));
    assert_eq!(app.me(&t.token).await.status, 401);
    assert_eq!(app.me(&other.token).await.status, 401);
    assert_eq!(app.refresh(&other.refresh_token).await.status, 401);
    assert_eq!(app.get("/v1/auth/verify", Some(&key)).await.status, 401);
    assert_eq!(app.login("gone@example.com", PASSWORD).await.status, 401);
    let again = app
        .post(
            "/v1/auth/register",
            json!({"email": "GONE@example.com", "password": PASSWORD, "name": "Again"}),
        )
        .await;
    assert_eq!(again.status, 201, "the email can register again");
}

#[tokio::test]
async fn deleting_an_account_with_two_factor_needs_a_code() {
    let app = TestApp::spawn().await;
    let (t, secret, backup) = enabled_user(&app, "gone2fa@example.com").await;
    let r = delete_me(&app, &t.token, json!({"password": PASSWORD})).await;
    assert_eq!((r.status, r.code()), (401, "totp_required".to_string()));
    let r = delete_me(
        &app,
        &t.token,
        json!({"password": PASSWORD, "totp_code": "000000"}),
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "invalid_totp_code".to_string()));
    let code = totp_at(&secret, app.clock.now_for_tests());
    let r = delete_me(
        &app,
        &t.token,
        json!({"password": PASSWORD, "totp_code": code}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(app.me(&t.token).await.status, 401);
    assert!(!backup.is_empty());
}

#[tokio::test]
async fn an_operator_can_delete_an_account_even_with_two_factor() {
    let app = TestApp::spawn().await;
    let (t, _, _) = enabled_user(&app, "opdelete@example.com").await;
    let answer = crate::helpers::admin(
        &app,
        json!({"cmd": "user_delete", "email": "opdelete@example.com"}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["deleted"], "opdelete@example.com");
    assert_eq!(app.me(&t.token).await.status, 401);
    assert_eq!(app.refresh(&t.refresh_token).await.status, 401);
    let answer = crate::helpers::admin(
        &app,
        json!({"cmd": "user_delete", "email": "opdelete@example.com"}),
    )
    .await;
    assert_eq!(answer["ok"], false, "no such account any more");
    app.register("opdelete@example.com").await;
}

#[tokio::test]
async fn an_unverified_email_cannot_log_in_when_verification_is_required() {
    let app = TestApp::spawn_with("[accounts]\nrequire_verified_email = true").await;
    app.register("unverified@example.com").await;
    let r = app.login("unverified@example.com", PASSWORD).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "email_not_verified".to_string())
    );
    assert!(r.json().get("token").is_none(), "no token");
    let r = app
        .login("unverified@example.com", "wrong password here")
        .await;
    assert_eq!(r.status, 401, "only a right password learns why");
    let answer = crate::helpers::admin(
        &app,
        json!({"cmd": "user_verify_email", "email": "unverified@example.com"}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(
        app.login("unverified@example.com", PASSWORD).await.status,
        200
    );
}

#[tokio::test]
async fn an_operator_hands_out_a_reset_link_on_a_server_without_mail() {
    let app = TestApp::spawn_with("[email]\ntransport = \"none\"").await;
    let t = app.register("nomailreset@example.com").await;
    let answer = crate::helpers::admin(
        &app,
        json!({"cmd": "user_reset_password", "email": "nomailreset@example.com"}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    let link = answer["result"]["reset_link"].as_str().expect("link");
    let token = link.split("token=").nth(1).expect("token");
    assert!(link.contains("/reset-password?token="), "{link}");
    let r = app
        .post(
            "/v1/auth/password/reset",
            json!({"token": token, "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(app.me(&t.token).await.status, 401, "sessions ended");
    assert_eq!(
        app.login("nomailreset@example.com", NEW_PASSWORD)
            .await
            .status,
        200
    );
}

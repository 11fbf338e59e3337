//! The verified-token cache never outlives a revocation: with it warm, and with it off, a
//! logout, a session revoke, a disable and a key revoke hold on the very next request.

use crate::helpers::{admin, tokens, TestApp, PASSWORD};
use serde_json::json;

async fn warm(app: &TestApp, token: &str) {
    for _ in 0..3 {
        assert_eq!(app.me(token).await.status, 200);
        assert_eq!(app.get("/v1/auth/verify", Some(token)).await.status, 200);
    }
}

#[tokio::test]
async fn revocations_hold_on_the_very_next_request_with_the_cache_warm_and_off() {
    for config in ["", "[cache]\ntokens = 0\nsessions = 0\nkeys = 0"] {
        let app = TestApp::spawn_with(config).await;
        let first = app.register("cached@example.com").await;
        let second = tokens(&app.login("cached@example.com", PASSWORD).await);
        let third = tokens(&app.login("cached@example.com", PASSWORD).await);
        for t in [&first, &second, &third] {
            warm(&app, &t.token).await;
        }
        let key = app
            .post_as(
                "/v1/auth/api-keys",
                Some(&first.token),
                json!({"name": "k", "scopes": ["databases:read"]}),
            )
            .await
            .json();
        let (key_id, key) = (
            key["id"].as_str().expect("id").to_string(),
            key["api_key"].as_str().expect("key").to_string(),
        );
        warm(&app, &key).await;

        // Logout: the token of that session is refused at once.
        assert_eq!(
            app.post_as("/v1/auth/logout", Some(&second.token), json!({}))
                .await
                .status,
            200
        );
        assert_eq!(
            app.me(&second.token).await.status,
            401,
            "{config:?}: logged out"
        );
        // Another session revoked from the first.
        let sid = crate::helpers::jwt_part(&third.token, 1)["sid"]
            .as_str()
            .expect("sid")
            .to_string();
        assert_eq!(
            app.delete(&format!("/v1/auth/sessions/{sid}"), &first.token)
                .await
                .status,
            200
        );
        assert_eq!(
            app.me(&third.token).await.status,
            401,
            "{config:?}: revoked"
        );
        // A revoked key.
        assert_eq!(
            app.delete(&format!("/v1/auth/api-keys/{key_id}"), &first.token)
                .await
                .status,
            200
        );
        assert_eq!(
            app.get("/v1/auth/verify", Some(&key)).await.status,
            401,
            "{config:?}: key revoked"
        );
        // A disabled user.
        let answer = admin(
            &app,
            json!({"cmd": "user_disable", "email": "cached@example.com"}),
        )
        .await;
        assert_eq!(answer["ok"], true, "{answer}");
        let r = app.me(&first.token).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "account_disabled".to_string()),
            "{config:?}"
        );
    }
}

#[tokio::test]
async fn the_token_cache_never_grows_past_its_bound() {
    let app = TestApp::spawn_with("[cache]\ntokens = 100").await;
    let t = app.register("bound@example.com").await;
    let mut refresh = t.refresh_token;
    for _ in 0..300 {
        let next = tokens(&app.refresh(&refresh).await);
        assert_eq!(app.me(&next.token).await.status, 200);
        refresh = next.refresh_token;
    }
    let metrics = app.get("/metrics", None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    let held: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cloudheed_token_cache_entries "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge");
    // The bound, rounded up to whole shards.
    assert!((1.0..=112.0).contains(&held), "{held}");
}

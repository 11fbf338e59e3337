//! Throttling and lockout: per-address token buckets and the per-account lock.

use serde_json::json;

use crate::helpers::{tokens, TestApp, PASSWORD};

fn assert_throttled(r: &crate::helpers::TestResponse, what: &str) {
    assert_eq!(
        (r.status, r.code()),
        (429, "rate_limited".to_string()),
        "{what}"
    );
    let secs: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(secs >= 1, "{what}");
}

#[tokio::test]
async fn login_attempts_per_address_are_limited() {
    let app = TestApp::spawn_with(
        "[rate_limits]\nenabled = true\nlogin = [\"3/1m\"]\nfailures = [\"100/1m\"]",
    )
    .await;
    for i in 0..3 {
        let r = app
            .login(&format!("nobody{i}@example.com"), "wrong password here")
            .await;
        assert_eq!(r.status, 401);
    }
    let r = app.login("nobody@example.com", "wrong password here").await;
    assert_throttled(&r, "fourth login in a minute");
    app.clock.advance(20);
    assert_eq!(
        app.login("nobody@example.com", "wrong password here")
            .await
            .status,
        401,
        "refilled"
    );
}

#[tokio::test]
async fn registrations_and_refreshes_per_address_are_limited() {
    let app = TestApp::spawn_with(
        "[rate_limits]\nenabled = true\nregister = [\"2/1h\"]\nrefresh = [\"2/1m\"]",
    )
    .await;
    let t = app.register("r1@example.com").await;
    app.register("r2@example.com").await;
    let r = app
        .post(
            "/v1/auth/register",
            json!({"email": "r3@example.com", "password": PASSWORD, "name": "R"}),
        )
        .await;
    assert_throttled(&r, "third registration");
    let t1 = tokens(&app.refresh(&t.refresh_token).await);
    let t2 = tokens(&app.refresh(&t1.refresh_token).await);
    assert_throttled(&app.refresh(&t2.refresh_token).await, "third refresh");
    app.clock.advance(30);
    assert_eq!(
        app.refresh(&t2.refresh_token).await.status,
        200,
        "the token was not spent by the 429"
    );
}

#[tokio::test]
async fn failed_credentials_per_address_are_limited_for_every_kind() {
    let app = TestApp::spawn_with("[rate_limits]\nenabled = true\nfailures = [\"4/1m\"]").await;
    let t = app.register("f@example.com").await;
    assert_eq!(app.me("bad-token").await.status, 401);
    assert_eq!(
        app.get(
            "/v1/auth/verify",
            Some("ch_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        )
        .await
        .status,
        401
    );
    assert_eq!(app.refresh(&"A".repeat(43)).await.status, 401);
    assert_eq!(
        app.login("f@example.com", "wrong password here")
            .await
            .status,
        401
    );
    // The address is out of failures: even good credentials wait.
    assert_throttled(
        &app.me(&t.token).await,
        "good token from a throttled address",
    );
    assert_throttled(&app.login("f@example.com", PASSWORD).await, "good password");
    assert_eq!(
        app.get("/healthz", None).await.status,
        200,
        "probes are not credential checks"
    );
    app.clock.advance(15);
    assert_eq!(app.me(&t.token).await.status, 200);
}

#[tokio::test]
async fn an_account_locks_after_a_run_of_failures_and_the_lock_reveals_nothing() {
    let app = TestApp::spawn().await;
    app.register("lock@example.com").await;
    for _ in 0..5 {
        assert_eq!(
            app.login("lock@example.com", "wrong password here")
                .await
                .status,
            401
        );
    }
    let right = app.login("lock@example.com", PASSWORD).await;
    let wrong = app.login("lock@example.com", "wrong password here").await;
    assert_throttled(&right, "right password while locked");
    assert_eq!(
        right.body, wrong.body,
        "the same answer whatever the password"
    );
    app.clock.advance(30);
    assert_eq!(
        app.login("lock@example.com", PASSWORD).await.status,
        200,
        "the lock ends"
    );
    // A success reset the run: four more failures do not lock.
    for _ in 0..4 {
        assert_eq!(
            app.login("lock@example.com", "wrong password here")
                .await
                .status,
            401
        );
    }
    assert_eq!(app.login("lock@example.com", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn the_lock_grows_but_always_ends() {
    let app = TestApp::spawn().await;
    app.register("grow@example.com").await;
    let mut waits = Vec::new();
    for _ in 0..12 {
        let r = app.login("grow@example.com", "wrong password here").await;
        if r.status == 429 {
            let secs: i64 = r
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .expect("Retry-After");
            waits.push(secs);
            app.clock.advance(secs);
        }
    }
    assert!(waits.windows(2).all(|w| w[1] >= w[0]), "growing: {waits:?}");
    assert!(
        waits.iter().all(|w| *w <= 3600),
        "capped at an hour: {waits:?}"
    );
    let r = app.login("grow@example.com", PASSWORD).await;
    let wait: i64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    app.clock.advance(wait);
    assert_eq!(
        app.login("grow@example.com", PASSWORD).await.status,
        200,
        "the owner gets back in"
    );
}

async fn login_from(app: &TestApp, xff: &str) -> crate::helpers::TestResponse {
    let body = json!({"email": "x@example.com", "password": "wrong password here"}).to_string();
    app.request(
        "POST",
        "/v1/auth/login",
        &[
            ("content-type", "application/json"),
            ("x-forwarded-for", xff),
        ],
        Some(body.into_bytes()),
    )
    .await
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let trusted = TestApp::spawn_with(
        "[rate_limits]\nenabled = true\ntrusted_proxies = [\"127.0.0.1\"]\nlogin = [\"2/1m\"]",
    )
    .await;
    assert_eq!(login_from(&trusted, "203.0.113.1").await.status, 401);
    assert_eq!(
        login_from(&trusted, "198.51.100.7, 203.0.113.1")
            .await
            .status,
        401
    );
    assert_throttled(
        &login_from(&trusted, "203.0.113.1").await,
        "same client behind the proxy",
    );
    assert_eq!(
        login_from(&trusted, "203.0.113.2").await.status,
        401,
        "another client"
    );
    let untrusted = TestApp::spawn_with("[rate_limits]\nenabled = true\nlogin = [\"2/1m\"]").await;
    assert_eq!(login_from(&untrusted, "203.0.113.1").await.status, 401);
    assert_eq!(login_from(&untrusted, "203.0.113.2").await.status, 401);
    assert_throttled(
        &login_from(&untrusted, "203.0.113.3").await,
        "X-Forwarded-For ignored",
    );
}

#[tokio::test]
async fn sessions_record_the_forwarded_client_address() {
    let app = TestApp::spawn_with("[rate_limits]\ntrusted_proxies = [\"127.0.0.1\"]").await;
    let body = json!({"email": "addr@example.com", "password": PASSWORD, "name": "A"}).to_string();
    let r = app
        .request(
            "POST",
            "/v1/auth/register",
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", "203.0.113.50"),
            ],
            Some(body.into_bytes()),
        )
        .await;
    let t = tokens(&r);
    let list = app.get("/v1/auth/sessions", Some(&t.token)).await.json();
    assert_eq!(list["sessions"][0]["ip"], "203.0.113.50");
}

#[tokio::test]
async fn limits_can_be_turned_off() {
    let app = TestApp::spawn_with("[rate_limits]\nenabled = false\nlogin = [\"1/1h\"]").await;
    for _ in 0..5 {
        assert_eq!(
            app.login("off@example.com", "wrong password here")
                .await
                .status,
            401
        );
    }
}

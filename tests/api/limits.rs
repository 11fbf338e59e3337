//! Throttling and lockout: per-address token buckets and the per-account lock.

use serde_json::json;

use crate::helpers::{tokens, TestApp, TestResponse, PASSWORD};

fn assert_throttled(r: &TestResponse, what: &str) {
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
async fn registrations_and_refused_refresh_tokens_per_address_are_limited() {
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
    let mut current = t.refresh_token;
    for i in 0..10 {
        let r = app.refresh(&current).await;
        assert_eq!(r.status, 200, "valid refresh {i} is never limited");
        current = tokens(&r).refresh_token;
    }
    assert_eq!(app.refresh(&"A".repeat(43)).await.status, 401);
    assert_eq!(app.refresh(&"B".repeat(43)).await.status, 401);
    assert_throttled(&app.refresh(&"C".repeat(43)).await, "third refused token");
    assert_eq!(
        app.refresh(&current).await.status,
        200,
        "a valid token from the same address still refreshes"
    );
}

#[tokio::test]
async fn junk_bearer_credentials_lock_no_one_out() {
    // The packaged set-up: behind a proxy every client has the proxy's address.
    let app = TestApp::spawn_with("[rate_limits]\nenabled = true").await;
    let t = app.register("f@example.com").await;
    let key = crate::helpers::create_key(&app, &t.token, &["databases:read"]).await;
    for i in 0..50 {
        assert_eq!(app.me(&format!("junk-token-{i}")).await.status, 401);
        let junk_key = format!("ch_live_{i:0>38}");
        assert_eq!(
            app.get("/v1/auth/verify", Some(&junk_key)).await.status,
            401
        );
    }
    assert_eq!(app.me(&t.token).await.status, 200, "a valid token");
    assert_eq!(app.get("/v1/auth/verify", Some(&t.token)).await.status, 200);
    assert_eq!(
        app.get("/v1/auth/verify?scope=databases:read", Some(&key))
            .await
            .status,
        200,
        "a valid key"
    );
    assert_eq!(app.login("f@example.com", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn password_guesses_per_address_are_counted_as_they_start() {
    let app = std::sync::Arc::new(
        TestApp::spawn_with(
            "[rate_limits]\nenabled = true\nfailures = [\"4/1m\"]\nlogin = [\"100/1m\"]",
        )
        .await,
    );
    app.register("g@example.com").await;
    // Forty guesses at once against four allowed: the rest are refused before any is checked.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.login(
                &format!("victim{}@example.com", i % 3),
                "wrong password here",
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(evaluated, 4, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 36);
    assert_throttled(
        &app.login("g@example.com", PASSWORD).await,
        "the guessing address waits, even with the right password",
    );
    app.clock.advance(15);
    assert_eq!(app.login("g@example.com", PASSWORD).await.status, 200);
    assert_eq!(
        app.login("g@example.com", PASSWORD).await.status,
        200,
        "right passwords are not failures"
    );
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

/// A wrong login for an unknown account, as the client `xff` claims to be.
async fn login_from(app: &TestApp, xff: &str) -> TestResponse {
    login_as(app, xff, "x@example.com", "wrong password here").await
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

/// A login for `email` with `X-Forwarded-For: xff` (believed only when the test's own address
/// is a trusted proxy).
async fn login_as(app: &TestApp, xff: &str, email: &str, password: &str) -> TestResponse {
    let body = json!({"email": email, "password": password}).to_string();
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

const BEHIND_PROXY: &str = "[rate_limits]\ntrusted_proxies = [\"127.0.0.0/8\", \"::1\"]";

#[tokio::test]
async fn a_stranger_cannot_keep_the_owner_out_with_the_account_lock() {
    let app = TestApp::spawn_with(BEHIND_PROXY).await;
    app.register("owner@example.com").await;
    let home = "2001:db8:aa:1::10";
    assert_eq!(
        login_as(&app, home, "owner@example.com", PASSWORD)
            .await
            .status,
        200
    );
    let stranger = "203.0.113.66";
    for _ in 0..5 {
        let r = login_as(&app, stranger, "owner@example.com", "wrong password here").await;
        assert_eq!(r.status, 401);
    }
    assert_throttled(
        &login_as(&app, stranger, "owner@example.com", PASSWORD).await,
        "the stranger is locked out, even with the right password",
    );
    assert_throttled(
        &login_as(&app, "198.51.100.1", "owner@example.com", PASSWORD).await,
        "an unknown network is refused while the lock lasts",
    );
    assert_eq!(
        login_as(
            &app,
            "2001:db8:aa:1:ffff::77",
            "owner@example.com",
            PASSWORD
        )
        .await
        .status,
        200,
        "the owner, from another address of the network it logged in from, is not"
    );
    // The owner's own wrong guesses still count: they are not a way around the lock.
    for _ in 0..5 {
        login_as(&app, stranger, "owner@example.com", "wrong password here").await;
    }
    let r = login_as(&app, home, "owner@example.com", "wrong password here").await;
    assert_eq!(r.status, 401, "evaluated, and counted");
    let r = login_as(&app, stranger, "owner@example.com", PASSWORD).await;
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("still locked");
    assert!(
        wait > 30,
        "the owner's guesses made the lock longer: {wait}"
    );
    // Thirty days on, the network is no longer known.
    app.clock.advance(31 * 86_400);
    for _ in 0..5 {
        login_as(&app, stranger, "owner@example.com", "wrong password here").await;
    }
    assert_throttled(
        &login_as(&app, home, "owner@example.com", PASSWORD).await,
        "a login more than 30 days old makes no network known",
    );
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_network_not_per_address() {
    let app = TestApp::spawn_with(&format!(
        "{BEHIND_PROXY}\nenabled = true\nlogin = [\"5/1m\"]"
    ))
    .await;
    let mut statuses = Vec::new();
    for i in 0..40 {
        let addr = format!("2001:db8:5:6:{i:x}::1");
        statuses.push(
            login_as(&app, &addr, "x@example.com", "wrong password here")
                .await
                .status,
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        login_as(
            &app,
            "2001:db8:5:7::1",
            "x@example.com",
            "wrong password here"
        )
        .await
        .status,
        401,
        "the next /64 is another client"
    );
}

#[tokio::test]
async fn the_limiter_forgets_the_least_recently_seen_clients_beyond_its_bound() {
    let why = "the in-memory limiter's bound (shared limits are rows that expire)";
    if !crate::helpers::only_on_redb("the_limiter_forgets_the_least_recently_seen_clients", why) {
        return;
    }
    let app = TestApp::spawn_with(&format!(
        "{BEHIND_PROXY}\nenabled = true\nrefresh = [\"1/1h\"]\nmax_tracked_clients = 1000"
    ))
    .await;
    let junk = |xff: String| {
        let app = &app;
        async move {
            let body = json!({"refresh_token": "junk"}).to_string();
            app.request(
                "POST",
                "/v1/auth/refresh",
                &[
                    ("content-type", "application/json"),
                    ("x-forwarded-for", &xff),
                ],
                Some(body.into_bytes()),
            )
            .await
            .status
        }
    };
    assert_eq!(junk("198.51.100.1".into()).await, 401);
    assert_eq!(junk("198.51.100.1".into()).await, 429, "tracked");
    for i in 0..3000_u32 {
        let [_, _, b, c] = i.to_be_bytes();
        assert_eq!(junk(format!("10.9.{b}.{c}")).await, 401);
    }
    assert_eq!(
        junk("198.51.100.1".into()).await,
        401,
        "3000 newer clients pushed it out: memory stays bounded"
    );
    let metrics = app.get("/metrics", None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    let tracked: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cloudheed_rate_limit_tracked "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge");
    // At most the cap, rounded up to whole shards of the limiter.
    assert!((900.0..=1016.0).contains(&tracked), "{tracked}");
}

#[tokio::test]
async fn a_stolen_session_is_no_password_oracle() {
    let app = std::sync::Arc::new(
        TestApp::spawn_with("[rate_limits]\nenabled = true\nfailures = [\"20/1m\"]").await,
    );
    let t = app.register("oracle@example.com").await;
    // Past the 15 minutes in which the login itself proves the password; the refreshed access
    // token keeps the login's time.
    app.clock.advance(16 * 60);
    let t = tokens(&app.refresh(&t.refresh_token).await);
    let setup = |password: &'static str| {
        let app = app.clone();
        let token = t.token.clone();
        async move {
            app.post_as(
                "/v1/auth/2fa/setup",
                Some(&token),
                json!({ "password": password }),
            )
            .await
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(setup("wrong password here").await.status);
    }
    assert_eq!(
        statuses, [403; 5],
        "wrong passwords: reauthentication_required"
    );
    assert_throttled(
        &setup(PASSWORD).await,
        "the account lock covers setup's password check",
    );
    app.clock.advance(60);
    assert_eq!(setup(PASSWORD).await.status, 200, "the lock ends");
    // Concurrent guesses are counted as they start: 40 at once against 20 a minute.
    app.clock.advance(3600);
    let u = app.register("oracle2@example.com").await;
    app.clock.advance(16 * 60);
    let u = tokens(&app.refresh(&u.refresh_token).await);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let app = app.clone();
        let token = u.token.clone();
        tasks.push(tokio::spawn(async move {
            app.post_as(
                "/v1/auth/2fa/setup",
                Some(&token),
                json!({"password": "wrong password here"}),
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    let evaluated = statuses.iter().filter(|s| **s == 403).count();
    assert!(evaluated <= 20, "{evaluated} evaluated: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 403 || *s == 429),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn one_session_cannot_flood_the_database_with_writes() {
    let app =
        TestApp::spawn_with("[rate_limits]\nenabled = true\naccount_writes = [\"3/1m\"]").await;
    let t = app.register("writes@example.com").await;
    let other = app.register("writes2@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            app.post_as("/v1/auth/2fa/setup", Some(&t.token), json!({}))
                .await
                .status,
            200
        );
    }
    let create = |token: String| {
        let app = &app;
        async move {
            app.post_as(
                "/v1/auth/api-keys",
                Some(&token),
                json!({"name": "k", "scopes": ["databases:read"]}),
            )
            .await
        }
    };
    assert_throttled(&create(t.token.clone()).await, "API-key create");
    assert_throttled(
        &app.delete("/v1/auth/api-keys/key-nope", &t.token).await,
        "API-key revoke",
    );
    assert_throttled(
        &app.delete("/v1/auth/sessions/ses-nope", &t.token).await,
        "session revoke",
    );
    assert_throttled(
        &app.post_as("/v1/auth/2fa/setup", Some(&t.token), json!({}))
            .await,
        "2FA setup",
    );
    assert_eq!(create(other.token.clone()).await.status, 201, "per account");
    assert_eq!(app.me(&t.token).await.status, 200, "reads are not limited");
    app.clock.advance(20);
    assert_eq!(create(t.token.clone()).await.status, 201, "refilled");
}

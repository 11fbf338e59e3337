//! The PostgreSQL backend as operators meet it: readiness that follows the database, and
//! several instances on one database behaving as one server.

use std::time::{Duration, Instant};

use crate::helpers::TestApp;
use crate::postgres;

/// A server on `pg` in a schema of its own.
async fn on(pg: &postgres::PgServer, extra: &str) -> TestApp {
    let url = pg.new_schema();
    TestApp::spawn_with(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n{extra}"
    ))
    .await
}

/// Poll `request` until it answers `status`, for at most a second.
async fn within_a_second<F, Fut>(request: F, status: u16)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::helpers::TestResponse>,
{
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let got = request().await.status;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {got} after a second, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn ready(app: &TestApp) -> u16 {
    app.get("/readyz", None).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_recovers_without_a_restart() {
    let Some(pg) = postgres::dedicated() else {
        return;
    };
    let app = on(&pg, "").await;
    let t = app.register("ready@example.com").await;
    assert_eq!(ready(&app).await, 200);
    pg.stop();
    assert_eq!(ready(&app).await, 503, "the database is down");
    assert!(
        app.me(&t.token).await.status >= 500,
        "no answer from a store that is gone"
    );
    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready(&app).await != 200 {
        assert!(Instant::now() < deadline, "readiness did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.me(&t.token).await.status,
        200,
        "served again, same data"
    );
}

/// Two servers on one schema: instances A and B of one deployment.
async fn pair(pg: &postgres::PgServer, extra: &str) -> (TestApp, TestApp) {
    let url = pg.new_schema();
    let config = format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n{extra}");
    let a = TestApp::spawn_with(&config).await;
    let b = TestApp::spawn_with(&config).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_instance_ends_the_other_refuses_at_once() {
    let Some(pg) = postgres::server() else {
        return;
    };
    let (a, b) = pair(pg, "").await;
    let t = a.register("shared@example.com").await;
    assert_eq!(b.me(&t.token).await.status, 200, "B knows A's session");
    let other = crate::helpers::tokens(
        &b.login("shared@example.com", crate::helpers::PASSWORD)
            .await,
    );
    assert_eq!(a.me(&other.token).await.status, 200, "and A knows B's");
    // B's caches are warm: what A ends shows on B within a second (B's reads live 500 ms).
    for _ in 0..3 {
        assert_eq!(b.me(&t.token).await.status, 200);
    }
    let r = a
        .post_as("/v1/auth/logout", Some(&t.token), serde_json::json!({}))
        .await;
    assert_eq!(r.status, 200);
    let ended = Instant::now();
    within_a_second(|| b.me(&t.token), 401).await;
    assert!(ended.elapsed() < Duration::from_secs(1));
    assert_eq!(b.refresh(&t.refresh_token).await.status, 401);
    // A key made on B works on A; revoked on A, B refuses it.
    let key = crate::helpers::create_key(&b, &other.token, &["databases:read"]).await;
    assert_eq!(a.get("/v1/auth/verify", Some(&key)).await.status, 200);
    let listed = a.get("/v1/auth/api-keys", Some(&other.token)).await.json();
    let id = listed["api_keys"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        a.delete(&format!("/v1/auth/api-keys/{id}"), &other.token)
            .await
            .status,
        200
    );
    within_a_second(|| b.get("/v1/auth/verify", Some(&key)), 401).await;
    // An operator disables the account through A: B refuses its tokens.
    let r = crate::helpers::admin(
        &a,
        serde_json::json!({"cmd": "user_disable", "email": "shared@example.com"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    within_a_second(|| b.me(&other.token), 403).await;
    let login = b
        .login("shared@example.com", crate::helpers::PASSWORD)
        .await;
    assert_eq!(login.code(), "account_disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_refreshes_across_instances_at_most_one_succeeds() {
    let Some(pg) = postgres::server() else {
        return;
    };
    let (a, b) = pair(pg, "").await;
    for round in 0..10 {
        let t = a.register(&format!("race{round}@example.com")).await;
        let (ra, rb) = tokio::join!(a.refresh(&t.refresh_token), b.refresh(&t.refresh_token));
        let wins = [ra.status, rb.status].iter().filter(|s| **s == 200).count();
        assert!(wins <= 1, "round {round}: both rotated one token");
        assert!(
            [ra.status, rb.status]
                .iter()
                .all(|s| *s == 200 || *s == 401),
            "round {round}: {} {}",
            ra.status,
            rb.status
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_on_one_instance_signs_and_verifies_on_the_other() {
    let Some(pg) = postgres::server() else {
        return;
    };
    let (a, b) = pair(pg, "").await;
    let before = a.register("keys-before@example.com").await;
    let r = crate::helpers::admin(&a, serde_json::json!({"cmd": "keys_rotate"})).await;
    assert_eq!(r["ok"], true, "{r}");
    let after = a.register("keys-after@example.com").await;
    let kid = |t: &str| {
        crate::helpers::jwt_part(t, 0)["kid"]
            .as_str()
            .expect("kid")
            .to_string()
    };
    assert_ne!(kid(&before.token), kid(&after.token));
    assert_eq!(
        b.me(&after.token).await.status,
        200,
        "B accepts A's new key at once"
    );
    assert_eq!(
        b.me(&before.token).await.status,
        200,
        "and still the old one"
    );
    let jwks = b.get("/.well-known/jwks.json", None).await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid"))
        .collect();
    assert!(kids.contains(&kid(&after.token).as_str()), "{jwks}");
    let on_b = crate::helpers::tokens(
        &b.login("keys-before@example.com", crate::helpers::PASSWORD)
            .await,
    );
    assert_eq!(
        kid(&on_b.token),
        kid(&after.token),
        "B signs with the new key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_records_the_use_of_keys() {
    let Some(pg) = postgres::server() else {
        return;
    };
    let (a, b) = pair(pg, "[api_keys]\nlast_used_flush = \"1s\"\n").await;
    let t = a.register("usage@example.com").await;
    let key = crate::helpers::create_key(&a, &t.token, &["databases:read"]).await;
    assert_eq!(b.get("/v1/auth/verify", Some(&key)).await.status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = a.get("/v1/auth/api-keys", Some(&t.token)).await.json();
        if listed["api_keys"][0]["last_used_at"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's use never reached A: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_grace_and_reuse_detection_hold_across_instances() {
    let Some(pg) = postgres::server() else {
        return;
    };
    let (a, b) = pair(pg, "[tokens]\nrefresh_reuse_grace = \"10s\"\n").await;
    let t = a.register("grace-pair@example.com").await;
    let first = a.refresh(&t.refresh_token).await;
    assert_eq!(first.status, 200);
    let again = b.refresh(&t.refresh_token).await;
    assert_eq!(
        again.status, 200,
        "B answers within the grace: {:?}",
        again.body
    );
    assert_eq!(
        again.json()["refresh_token"],
        first.json()["refresh_token"],
        "with the very same successor, never a second lineage"
    );
    // Past the grace, the spent token presented to B is reuse: the whole session ends, on A too.
    b.clock.advance(11);
    assert_eq!(b.refresh(&t.refresh_token).await.status, 401);
    let successor = first.json()["refresh_token"]
        .as_str()
        .expect("rt")
        .to_string();
    assert_eq!(
        a.refresh(&successor).await.status,
        401,
        "the session ended everywhere"
    );
}

/// A registration from one client (through the trusted local proxy).
async fn register_from(app: &TestApp, email: &str) -> u16 {
    let body =
        serde_json::json!({"email": email, "password": crate::helpers::PASSWORD, "name": "R"})
            .to_string();
    app.request(
        "POST",
        "/v1/auth/register",
        &[
            ("content-type", "application/json"),
            ("x-forwarded-for", "192.0.2.78"),
        ],
        Some(body.into_bytes()),
    )
    .await
    .status
}

/// A login from `from` (through the trusted local proxy) with `password`.
async fn login_from(app: &TestApp, from: &str, email: &str, password: &str) -> u16 {
    let body = serde_json::json!({"email": email, "password": password}).to_string();
    app.request(
        "POST",
        "/v1/auth/login",
        &[
            ("content-type", "application/json"),
            ("x-forwarded-for", from),
        ],
        Some(body.into_bytes()),
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_spread_over_instances_count_together() {
    let Some(pg) = postgres::server() else {
        return;
    };
    let (a, b) = pair(
        pg,
        "[rate_limits]\nenabled = true\nfailures = [\"4/1m\"]\nlogin = [\"100/1m\"]\nregister = [\"100/1m\"]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    )
    .await;
    // The account lock: five wrong passwords, alternating instances, lock it on both.
    a.register("locked-pair@example.com").await;
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        let from = format!("198.51.100.{}", i + 1);
        assert_eq!(
            login_from(app, &from, "locked-pair@example.com", "wrong guess 1").await,
            401
        );
    }
    assert_eq!(
        login_from(
            &b,
            "198.51.100.9",
            "locked-pair@example.com",
            "wrong guess 1"
        )
        .await,
        401
    );
    for app in [&a, &b] {
        let status = login_from(
            app,
            "198.51.100.10",
            "locked-pair@example.com",
            crate::helpers::PASSWORD,
        )
        .await;
        assert_eq!(status, 429, "locked on every instance");
    }
    // A client's failure budget (4 a minute): guesses on A and B draw from one bucket.
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        let email = format!("nobody{i}@example.com");
        assert_eq!(
            login_from(app, "203.0.113.50", &email, "wrong guess 2").await,
            401
        );
    }
    a.register("budget@example.com").await;
    let status = login_from(
        &a,
        "203.0.113.50",
        "budget@example.com",
        crate::helpers::PASSWORD,
    )
    .await;
    assert_eq!(
        status, 429,
        "the fifth guess from that client, wherever it lands"
    );
    let status = login_from(
        &b,
        "203.0.113.51",
        "budget@example.com",
        crate::helpers::PASSWORD,
    )
    .await;
    assert_eq!(status, 200, "another client is not held back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let Some(pg) = postgres::server() else {
        return;
    };
    let url = pg.new_schema();
    let config = format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
    let (a, b) = tokio::join!(TestApp::spawn_with(&config), TestApp::spawn_with(&config));
    let t = a.register("migrated-once@example.com").await;
    assert_eq!(b.me(&t.token).await.status, 200);
    a.stop().await;
    b.stop().await;
    // As if a newer cloudheed-auth had migrated the database: this build refuses it.
    let schema = url.rsplit("%3D").next().expect("schema");
    let out = std::process::Command::new(pg.bin.join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-q",
            "-c",
        ])
        .arg(format!(
            "UPDATE {schema}.meta SET value = 99 WHERE name = 'schema_version'"
        ))
        .arg("postgres")
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().expect("tmp");
    let text = format!(
        "data_dir = {:?}\n{config}",
        dir.path().join("data").display().to_string()
    );
    let config = cloudheed_auth::Config::from_toml(&text).expect("config");
    let Err(refused) = cloudheed_auth::App::build(config).await else {
        panic!("a newer schema was accepted");
    };
    assert!(refused.to_string().contains("99"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_and_account_limit_counts_across_instances() {
    let Some(pg) = postgres::server() else {
        return;
    };
    let (a, b) = pair(
        pg,
        "[rate_limits]\nenabled = true\nlogin = [\"3/1m\"]\nfailures = [\"100/1m\"]\nregister = [\"2/1m\"]\naccount_writes = [\"2/1m\"]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    )
    .await;
    // Logins: three a minute from one client, wherever they land.
    for app in [&a, &b, &a] {
        assert_eq!(
            login_from(app, "192.0.2.77", "nobody@example.com", "x-password-1").await,
            401
        );
    }
    assert_eq!(
        login_from(&b, "192.0.2.77", "nobody@example.com", "x-password-1").await,
        429
    );
    // Registrations: two a minute from one client.
    assert_eq!(register_from(&a, "reg-a@example.com").await, 201);
    assert_eq!(register_from(&b, "reg-b@example.com").await, 201);
    assert_eq!(register_from(&a, "reg-c@example.com").await, 429);
    // An account's writes: two API keys a minute, on whichever instance.
    let t = a.register("writes@example.com").await;
    let body = serde_json::json!({"name": "k", "scopes": ["databases:read"]});
    for (app, status) in [(&a, 201), (&b, 201), (&a, 429)] {
        let r = app
            .post_as("/v1/auth/api-keys", Some(&t.token), body.clone())
            .await;
        assert_eq!(r.status, status, "{:?}", r.body);
    }
}

/// Whether a server with the store at `url` (and `extra` store settings) starts.
async fn build_on(url: &str, extra: &str) -> Result<(), cloudheed_auth::StartupError> {
    let dir = tempfile::tempdir().expect("tmp");
    let text = format!(
        "data_dir = {:?}\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n{extra}",
        dir.path().join("data").display().to_string()
    );
    let config = cloudheed_auth::Config::from_toml(&text).expect("config");
    cloudheed_auth::App::build(config).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_database_checks_its_certificate_against_the_configured_ca() {
    let Some((pg, ca)) = postgres::dedicated_with_tls() else {
        return;
    };
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=require",
        pg.port
    );
    // The web's roots alone do not vouch for a private CA: no connection, no start.
    let refused = build_on(&url, "").await;
    let why = refused
        .err()
        .map(|e| format!("{e:?}").to_lowercase())
        .expect("a certificate no trusted CA signed was accepted");
    assert!(why.contains("certificate") || why.contains("tls"), "{why}");
    let with_ca = format!("ca_file = {:?}\n", ca.display().to_string());
    assert!(
        build_on(&url, &with_ca).await.is_ok(),
        "the configured CA vouches for it"
    );
    let app = TestApp::spawn_with(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n{with_ca}"
    ))
    .await;
    let t = app.register("tls@example.com").await;
    assert_eq!(app.me(&t.token).await.status, 200);
}

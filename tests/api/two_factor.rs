//! Two-factor authentication with codes computed from the returned secret by the test's own
//! RFC 6238 implementation; time moves only through the injected clock.

use serde_json::{json, Value};

use std::sync::Arc;

use crate::helpers::{hotp, keys, tokens, totp_at, ClockExt, TestApp, Tokens, PASSWORD};

#[test]
fn the_test_totp_matches_the_rfc_vectors() {
    let key = b"12345678901234567890";
    for (count, want) in ["755224", "287082", "359152", "969429", "338314"]
        .iter()
        .enumerate()
    {
        assert_eq!(hotp(key, count as u64), *want);
    }
    let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    for (t, want) in [
        (59, "287082"),
        (1_111_111_109, "081804"),
        (1_234_567_890, "005924"),
        (20_000_000_000, "353130"),
    ] {
        assert_eq!(totp_at(b32, t), want);
    }
}

async fn setup(app: &TestApp, token: &str) -> Value {
    let r = app
        .post_as("/v1/auth/2fa/setup", Some(token), json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json()
}

/// A registered user with 2FA on; returns its tokens, secret and backup codes. The clock is
/// moved one step on, so the step used to enable is not the current one.
pub(crate) async fn enabled_user(app: &TestApp, email: &str) -> (Tokens, String, Vec<String>) {
    let t = app.register(email).await;
    let secret = setup(app, &t.token).await["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let code = totp_at(&secret, app.clock.now_for_tests());
    let r = app
        .post_as(
            "/v1/auth/2fa/verify",
            Some(&t.token),
            json!({ "code": code }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let backup = r.json()["backup_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    app.clock.advance(30);
    (t, secret, backup)
}

async fn login_with(
    app: &TestApp,
    email: &str,
    password: &str,
    code: Option<&str>,
) -> crate::helpers::TestResponse {
    let mut body = json!({"email": email, "password": password});
    if let Some(c) = code {
        body["totp_code"] = json!(c);
    }
    app.post("/v1/auth/login", body).await
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf8")
}

#[tokio::test]
async fn setup_returns_a_secret_an_otpauth_url_and_an_svg() {
    let app = TestApp::spawn().await;
    let t = app.register("Ann+2fa@example.com").await;
    let r = app
        .post_as("/v1/auth/2fa/setup", Some(&t.token), json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(keys(&v), ["qr_code_svg", "qr_code_url", "secret"]);
    let secret = v["secret"].as_str().expect("secret");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "{secret}"
    );
    assert_eq!(
        data_encoding::BASE32_NOPAD
            .decode(secret.as_bytes())
            .expect("b32")
            .len(),
        20
    );
    let url = v["qr_code_url"].as_str().expect("url");
    let rest = url
        .strip_prefix("otpauth://totp/")
        .expect("otpauth totp URL");
    let (label, query) = rest.split_once('?').expect("query");
    assert_eq!(pct_decode(label), "Cloudheed:Ann+2fa@example.com");
    assert!(
        !label.contains('+') && !label.contains('@'),
        "encoded: {label}"
    );
    let params: Vec<(&str, &str)> = query
        .split('&')
        .map(|p| p.split_once('=').expect("k=v"))
        .collect();
    assert_eq!(params.iter().filter(|(k, _)| *k == "secret").count(), 1);
    assert!(params.contains(&("secret", secret)));
    assert!(params.contains(&("issuer", "Cloudheed")));
    for (k, v) in [("algorithm", "SHA1"), ("digits", "6"), ("period", "30")] {
        assert!(params.iter().all(|(pk, pv)| *pk != k || *pv == v), "{k}");
    }
    let svg = v["qr_code_svg"].as_str().expect("svg");
    assert!(
        svg.starts_with("<?xml") || svg.starts_with("<svg"),
        "{}",
        &svg[..40]
    );
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    // A new setup gives a new secret; no body at all is fine too.
    let again = app
        .request(
            "POST",
            "/v1/auth/2fa/setup",
            &[("authorization", &format!("Bearer {}", t.token))],
            None,
        )
        .await;
    assert_eq!(again.status, 200);
    assert_ne!(again.json()["secret"], v["secret"]);
}

#[tokio::test]
async fn the_issuer_comes_from_config() {
    let app = TestApp::spawn_with("issuer = \"ACME Co\"").await;
    let t = app.register("i@example.com").await;
    let url = setup(&app, &t.token).await["qr_code_url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(
        url.starts_with("otpauth://totp/ACME%20Co:i%40example.com?"),
        "{url}"
    );
    assert!(url.contains("&issuer=ACME%20Co"), "{url}");
}

#[tokio::test]
async fn setup_needs_a_recent_password_proof() {
    let app = TestApp::spawn().await;
    let t0 = app.register("reauth@example.com").await;
    app.clock.advance(14 * 60);
    let t = tokens(&app.refresh(&t0.refresh_token).await);
    app.clock.advance(2 * 60);
    // The token is fresh, but the password was proven 16 minutes ago.
    let r = app
        .post_as("/v1/auth/2fa/setup", Some(&t.token), json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "reauthentication_required".to_string())
    );
    let r = app
        .post_as(
            "/v1/auth/2fa/setup",
            Some(&t.token),
            json!({"password": "not the password"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "reauthentication_required".to_string())
    );
    let r = app
        .post_as(
            "/v1/auth/2fa/setup",
            Some(&t.token),
            json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn verify_enables_returns_backup_codes_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let t = app.register("enable@example.com").await;
    let other = tokens(&app.login("enable@example.com", PASSWORD).await);
    let r = app
        .post_as(
            "/v1/auth/2fa/verify",
            Some(&t.token),
            json!({"code": "123456"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "2fa_not_set_up".to_string()));
    let secret = setup(&app, &t.token).await["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let now = app.clock.now_for_tests();
    let wrong = if totp_at(&secret, now) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = app
        .post_as(
            "/v1/auth/2fa/verify",
            Some(&t.token),
            json!({ "code": wrong }),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_totp_code".to_string()));
    assert_eq!(
        app.me(&t.token).await.json()["two_factor_enabled"],
        false,
        "still off"
    );
    let r = app
        .post_as(
            "/v1/auth/2fa/verify",
            Some(&t.token),
            json!({ "code": totp_at(&secret, now) }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(keys(&v), ["backup_codes", "message_code"]);
    assert_eq!(v["message_code"], "2fa_enabled");
    let codes: Vec<&str> = v["backup_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("s"))
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(
        codes
            .iter()
            .all(|c| c.len() >= 8 && !c.contains(['0', 'O', '1', 'I', 'l'])),
        "{codes:?}"
    );
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert_eq!(
        app.me(&t.token).await.json()["two_factor_enabled"],
        true,
        "this session lives on"
    );
    assert_eq!(
        app.me(&other.token).await.status,
        401,
        "other sessions ended"
    );
    assert_eq!(app.refresh(&other.refresh_token).await.status, 401);
    let again = app
        .post_as(
            "/v1/auth/2fa/verify",
            Some(&t.token),
            json!({ "code": totp_at(&secret, now + 30) }),
        )
        .await;
    assert_eq!(
        (again.status, again.code()),
        (409, "2fa_already_enabled".to_string())
    );
    assert!(again.json().get("backup_codes").is_none());
    let r = app
        .post_as("/v1/auth/2fa/setup", Some(&t.token), json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (409, "2fa_already_enabled".to_string())
    );
}

#[tokio::test]
async fn a_code_for_an_older_pending_secret_is_refused() {
    let app = TestApp::spawn().await;
    let t = app.register("older@example.com").await;
    let first = setup(&app, &t.token).await["secret"]
        .as_str()
        .expect("s")
        .to_string();
    let second = setup(&app, &t.token).await["secret"]
        .as_str()
        .expect("s")
        .to_string();
    let now = app.clock.now_for_tests();
    if totp_at(&first, now) != totp_at(&second, now) {
        let r = app
            .post_as(
                "/v1/auth/2fa/verify",
                Some(&t.token),
                json!({ "code": totp_at(&first, now) }),
            )
            .await;
        assert_eq!((r.status, r.code()), (422, "invalid_totp_code".to_string()));
    }
    let r = app
        .post_as(
            "/v1/auth/2fa/verify",
            Some(&t.token),
            json!({ "code": totp_at(&second, now) }),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn login_with_two_factor_needs_a_fresh_code() {
    let app = TestApp::spawn().await;
    let email = "login2fa@example.com";
    let (_, secret, _) = enabled_user(&app, email).await;
    let now = app.clock.now_for_tests();
    let r = login_with(
        &app,
        email,
        "wrong password here",
        Some(&totp_at(&secret, now)),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_credentials".to_string()),
        "password first"
    );
    for code in [None, Some("")] {
        let r = login_with(&app, email, PASSWORD, code).await;
        assert_eq!((r.status, r.code()), (401, "totp_required".to_string()));
        assert!(r.json().get("token").is_none());
    }
    let r = app
        .post(
            "/v1/auth/login",
            json!({"email": email, "password": PASSWORD, "totp_code": null}),
        )
        .await;
    assert_eq!(r.code(), "totp_required");
    for (i, bad) in [
        "12345",
        "1234567",
        "12345a",
        " 123456",
        "１２３４５６",
        &totp_at(&secret, now - 60),
        &totp_at(&secret, now + 60),
    ]
    .iter()
    .enumerate()
    {
        let r = login_with(&app, email, PASSWORD, Some(bad)).await;
        // Every wrong code counts toward the lock, so the later ones may meet it.
        let ok = (r.status, r.code()) == (401, "invalid_totp_code".to_string())
            || (i >= 4 && (r.status, r.code()) == (429, "rate_limited".to_string()));
        assert!(ok, "{bad:?}: {} {}", r.status, r.code());
    }
    let r = app
        .post(
            "/v1/auth/login",
            json!({"email": email, "password": PASSWORD, "totp_code": 123456}),
        )
        .await;
    assert_eq!(r.status, 400, "a number is not a code");
    // The run of wrong codes above locks the account for a while; wait it out.
    app.clock.advance(30 * 60);
    let now = app.clock.now_for_tests();
    let r = login_with(&app, email, PASSWORD, Some(&totp_at(&secret, now))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["user"]["two_factor_enabled"], true);
    let replay = login_with(&app, email, PASSWORD, Some(&totp_at(&secret, now))).await;
    assert_eq!(
        (replay.status, replay.code()),
        (401, "invalid_totp_code".to_string()),
        "replayed"
    );
    let previous = login_with(&app, email, PASSWORD, Some(&totp_at(&secret, now - 30))).await;
    assert_eq!(previous.status, 401, "an older step than one already used");
    let next = login_with(&app, email, PASSWORD, Some(&totp_at(&secret, now + 30))).await;
    assert_eq!(next.status, 200, "one step of clock drift is accepted");
}

#[tokio::test]
async fn a_used_step_stays_used_across_a_restart() {
    let app = TestApp::spawn().await;
    let email = "restart2fa@example.com";
    let (_, secret, _) = enabled_user(&app, email).await;
    let code = totp_at(&secret, app.clock.now_for_tests());
    assert_eq!(
        login_with(&app, email, PASSWORD, Some(&code)).await.status,
        200
    );
    let app = app.restart().await;
    assert_eq!(
        login_with(&app, email, PASSWORD, Some(&code)).await.status,
        401
    );
}

#[tokio::test]
async fn backup_codes_are_single_use_and_work_wherever_a_code_does() {
    let app = TestApp::spawn().await;
    let (_, _, codes) = enabled_user(&app, "backup@example.com").await;
    let (_, _, other_codes) = enabled_user(&app, "other@example.com").await;
    let r = login_with(&app, "backup@example.com", PASSWORD, Some(&other_codes[0])).await;
    assert_eq!(r.status, 401, "another user's code");
    let r = login_with(&app, "backup@example.com", PASSWORD, Some(&codes[0])).await;
    assert_eq!(r.status, 200);
    let r = login_with(&app, "backup@example.com", PASSWORD, Some(&codes[0])).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_totp_code".to_string()),
        "single use"
    );
    let typed = codes[1].to_lowercase().replace('-', " ");
    let r = login_with(&app, "backup@example.com", PASSWORD, Some(&typed)).await;
    assert_eq!(r.status, 200, "case and separator do not matter");
    let t = tokens(&r);
    let r = app
        .post_as(
            "/v1/auth/2fa/disable",
            Some(&t.token),
            json!({"password": PASSWORD, "code": codes[2]}),
        )
        .await;
    assert_eq!(r.status, 200, "a backup code disables too");
}

#[tokio::test]
async fn disable_needs_the_password_and_a_code() {
    let app = TestApp::spawn().await;
    let email = "disable@example.com";
    let (t, secret, _) = enabled_user(&app, email).await;
    let now = app.clock.now_for_tests();
    let code = totp_at(&secret, now);
    let r = app
        .post_as(
            "/v1/auth/2fa/disable",
            Some(&t.token),
            json!({"password": "wrong-password-1", "code": code}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_password".to_string()));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = app
        .post_as(
            "/v1/auth/2fa/disable",
            Some(&t.token),
            json!({"password": PASSWORD, "code": wrong}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_totp_code".to_string()));
    for body in [json!({ "password": PASSWORD }), json!({ "code": code })] {
        let r = app
            .post_as("/v1/auth/2fa/disable", Some(&t.token), body)
            .await;
        assert_eq!(r.status, 422);
    }
    assert_eq!(
        app.me(&t.token).await.json()["two_factor_enabled"],
        true,
        "still on after failures"
    );
    let r = app
        .post_as(
            "/v1/auth/2fa/disable",
            Some(&t.token),
            json!({"password": PASSWORD, "code": code}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"message_code": "2fa_disabled"}));
    assert_eq!(app.me(&t.token).await.json()["two_factor_enabled"], false);
    assert_eq!(
        login_with(&app, email, PASSWORD, None).await.status,
        200,
        "no code needed any more"
    );
    let r = app
        .post_as(
            "/v1/auth/2fa/disable",
            Some(&t.token),
            json!({"password": PASSWORD, "code": code}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "2fa_not_enabled".to_string()));
}

#[tokio::test]
async fn guessing_codes_is_throttled_well_before_30_tries() {
    let app = TestApp::spawn().await;
    let email = "guess@example.com";
    let (_, secret, _) = enabled_user(&app, email).await;
    let now = app.clock.now_for_tests();
    let right = totp_at(&secret, now);
    let mut first_429 = None;
    for i in 0..30 {
        let guess = format!("{:06}", (i * 7919 + 13) % 1_000_000);
        if guess == right {
            continue;
        }
        let r = login_with(&app, email, PASSWORD, Some(&guess)).await;
        if r.status == 429 {
            assert_eq!(r.code(), "rate_limited");
            assert!(r
                .header("retry-after")
                .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0)));
            first_429.get_or_insert(i);
        } else {
            assert_eq!(r.status, 401);
        }
    }
    assert!(
        first_429.is_some_and(|i| i <= 10),
        "throttled at try {first_429:?}"
    );
    let r = login_with(&app, email, PASSWORD, Some(&right)).await;
    assert_eq!(r.status, 429, "even the right code waits out the lock");
    let r = login_with(&app, email, "wrong password here", Some(&right)).await;
    assert_eq!(
        r.code(),
        "rate_limited",
        "while locked the answer is the same whatever the password, so it reveals nothing"
    );
    app.clock.advance(16 * 60);
    let r = login_with(
        &app,
        email,
        PASSWORD,
        Some(&totp_at(&secret, now + 16 * 60)),
    )
    .await;
    assert_eq!(r.status, 200, "the owner gets back in after the lock");
}

#[tokio::test]
async fn wrong_codes_on_verify_and_disable_count_too() {
    let app = TestApp::spawn().await;
    let (t, secret, _) = enabled_user(&app, "count@example.com").await;
    let now = app.clock.now_for_tests();
    let right = totp_at(&secret, now);
    let mut statuses = Vec::new();
    for i in 0..8 {
        let guess = format!("{:06}", (i * 104_729 + 7) % 1_000_000);
        if guess == right {
            continue;
        }
        let r = app
            .post_as(
                "/v1/auth/2fa/disable",
                Some(&t.token),
                json!({"password": PASSWORD, "code": guess}),
            )
            .await;
        statuses.push(r.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = login_with(&app, "count@example.com", PASSWORD, Some(&right)).await;
    assert_eq!(r.status, 429, "the same account lock covers login");
}

#[tokio::test]
async fn api_keys_cannot_touch_two_factor() {
    let app = TestApp::spawn().await;
    let t = app.register("keys2fa@example.com").await;
    let key = app
        .post_as(
            "/v1/auth/api-keys",
            Some(&t.token),
            json!({"name": "k", "scopes": ["databases:read"]}),
        )
        .await
        .json()["api_key"]
        .as_str()
        .expect("key")
        .to_string();
    for path in [
        "/v1/auth/2fa/setup",
        "/v1/auth/2fa/verify",
        "/v1/auth/2fa/disable",
    ] {
        let r = app
            .post_as(
                path,
                Some(&key),
                json!({"code": "123456", "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (403, "session_required".to_string()),
            "{path}"
        );
    }
    assert_eq!(app.post("/v1/auth/2fa/setup", json!({})).await.status, 401);
}

#[tokio::test]
async fn secrets_and_backup_codes_are_not_kept_in_the_clear() {
    let app = TestApp::spawn().await;
    let (_, secret, codes) = enabled_user(&app, "rest@example.com").await;
    let me = app.login("rest@example.com", PASSWORD).await;
    assert!(
        !String::from_utf8_lossy(&me.body).contains(&secret),
        "no secret outside setup"
    );
    let raw = app.stored_bytes().await;
    for c in &codes {
        let canonical = c.replace('-', "");
        assert!(
            !raw.windows(canonical.len())
                .any(|w| w == canonical.as_bytes()),
            "backup code at rest"
        );
        assert!(!raw.windows(c.len()).any(|w| w == c.as_bytes()));
    }
    assert!(
        !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "no base32 form at rest"
    );
}

#[tokio::test]
async fn wrong_codes_on_verify_are_throttled() {
    let app = TestApp::spawn().await;
    let t = app.register("verifyguess@example.com").await;
    let secret = setup(&app, &t.token).await["secret"]
        .as_str()
        .expect("s")
        .to_string();
    let now = app.clock.now_for_tests();
    let right = totp_at(&secret, now);
    let mut statuses = Vec::new();
    for i in 0..8 {
        let guess = format!("{:06}", (i * 15_485_863 + 11) % 1_000_000);
        if guess != right {
            let r = app
                .post_as(
                    "/v1/auth/2fa/verify",
                    Some(&t.token),
                    json!({ "code": guess }),
                )
                .await;
            statuses.push(r.status);
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = app
        .post_as(
            "/v1/auth/2fa/verify",
            Some(&t.token),
            json!({ "code": right }),
        )
        .await;
    assert_eq!(r.status, 429, "locked for the right code too");
}

#[tokio::test]
async fn the_code_that_enabled_2fa_cannot_log_in() {
    let app = TestApp::spawn().await;
    let t = app.register("enablecode@example.com").await;
    let secret = setup(&app, &t.token).await["secret"]
        .as_str()
        .expect("s")
        .to_string();
    let code = totp_at(&secret, app.clock.now_for_tests());
    let r = app
        .post_as(
            "/v1/auth/2fa/verify",
            Some(&t.token),
            json!({ "code": code }),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = login_with(&app, "enablecode@example.com", PASSWORD, Some(&code)).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_totp_code".to_string()),
        "its step is spent"
    );
}

#[tokio::test]
async fn codes_two_steps_away_are_refused() {
    let app = TestApp::spawn().await;
    let email = "window@example.com";
    let (_, secret, _) = enabled_user(&app, email).await;
    // Two steps past the one used to enable, so the step before now is still unused.
    app.clock.advance(30);
    let now = app.clock.now_for_tests();
    for t in [now - 60, now + 60] {
        let r = login_with(&app, email, PASSWORD, Some(&totp_at(&secret, t))).await;
        assert_eq!((r.status, r.code()), (401, "invalid_totp_code".to_string()));
    }
    let r = login_with(&app, email, PASSWORD, Some(&totp_at(&secret, now - 30))).await;
    assert_eq!(r.status, 200, "one step back is within the window");
}

#[tokio::test]
async fn of_concurrent_logins_with_one_code_exactly_one_wins() {
    let app = Arc::new(TestApp::spawn().await);
    let (_, secret, _) = enabled_user(&app, "race-totp@example.com").await;
    let (_, _, backup) = enabled_user(&app, "race-backup@example.com").await;
    let totp = totp_at(&secret, app.clock.now_for_tests());
    for (email, code) in [
        ("race-totp@example.com", totp),
        ("race-backup@example.com", backup[0].clone()),
    ] {
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (app, code) = (app.clone(), code.clone());
            tasks.push(tokio::spawn(async move {
                login_with(&app, email, PASSWORD, Some(&code)).await.status
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.expect("task"));
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{email}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 401),
            "{statuses:?}"
        );
    }
}

#[tokio::test]
async fn the_svg_encodes_the_otpauth_url() {
    let app = TestApp::spawn().await;
    let t = app.register("svg@example.com").await;
    let v = setup(&app, &t.token).await;
    let url = v["qr_code_url"].as_str().expect("url");
    let expected = qrcode::QrCode::new(url.as_bytes())
        .expect("encodable")
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    assert_eq!(v["qr_code_svg"].as_str(), Some(expected.as_str()));
}

#[tokio::test]
async fn a_code_used_at_login_cannot_disable() {
    let app = TestApp::spawn().await;
    let email = "usedcode@example.com";
    let (_, secret, _) = enabled_user(&app, email).await;
    let code = totp_at(&secret, app.clock.now_for_tests());
    let t = tokens(&login_with(&app, email, PASSWORD, Some(&code)).await);
    let r = app
        .post_as(
            "/v1/auth/2fa/disable",
            Some(&t.token),
            json!({"password": PASSWORD, "code": code}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_totp_code".to_string()));
    assert_eq!(app.me(&t.token).await.json()["two_factor_enabled"], true);
}

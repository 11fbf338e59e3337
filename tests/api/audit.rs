//! The audit log over HTTP and the admin socket: every security event appears after its action
//! with the right fields, a user sees only their own, pages stay stable while events arrive,
//! nothing secret is recorded, the chain verifies (and retention keeps it verifiable).

use serde_json::{json, Value};

use crate::helpers::{
    admin, create_key, tokens, totp_at, ClockExt, TestApp, TestResponse, Tokens, PASSWORD,
};

const UA: &str = "audit-test/1.0 (X11)";
const NEW_PASSWORD: &str = "an audited passphrase 31";

async fn activity(app: &TestApp, token: &str, query: &str) -> TestResponse {
    app.get(&format!("/v1/auth/activity{query}"), Some(token))
        .await
}

/// Every event of the caller, newest first, through all pages.
async fn all_activity(app: &TestApp, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut query = "?limit=100".to_string();
    loop {
        let r = activity(app, token, &query).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let v = r.json();
        out.extend(v["events"].as_array().expect("events").iter().cloned());
        match v["next"].as_str() {
            Some(next) => query = format!("?limit=100&before={next}"),
            None => return out,
        }
    }
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_string())
        .collect()
}

fn first<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {events:#?}"))
}

/// The operator's view: every entry, oldest first, as `audit export` writes them.
async fn operator_entries(app: &TestApp) -> Vec<Value> {
    let answer = admin(
        app,
        json!({"cmd": "audit_page", "after": null, "limit": 10000}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].as_array().expect("entries").clone()
}

async fn post_with_ua(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> TestResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json"), ("user-agent", UA)];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    app.request("POST", path, &headers, Some(body.to_string().into_bytes()))
        .await
}

async fn register_with_ua(app: &TestApp, email: &str) -> Tokens {
    let r = post_with_ua(
        app,
        "/v1/auth/register",
        None,
        json!({"email": email, "password": PASSWORD, "name": "Audited"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    tokens(&r)
}

#[tokio::test]
async fn sign_ins_sessions_and_keys_appear_in_the_activity_with_their_fields() {
    let app = TestApp::spawn().await;
    let t = register_with_ua(&app, "trail@example.com").await;
    let wrong = post_with_ua(
        &app,
        "/v1/auth/login",
        None,
        json!({"email": "trail@example.com", "password": "not the password"}),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let other = tokens(&app.login("trail@example.com", PASSWORD).await);
    let key_id = {
        let r = app
            .post_as(
                "/v1/auth/api-keys",
                Some(&t.token),
                json!({"name": "ci", "scopes": ["databases:read"]}),
            )
            .await;
        assert_eq!(r.status, 201);
        r.json()["id"].as_str().expect("id").to_string()
    };
    assert_eq!(
        app.delete(&format!("/v1/auth/api-keys/{key_id}"), &t.token)
            .await
            .status,
        200
    );
    // A refresh token used twice: the server ends that session.
    let spent = other.refresh_token.clone();
    assert_eq!(app.refresh(&spent).await.status, 200);
    assert_eq!(app.refresh(&spent).await.status, 401);
    let third = tokens(&app.login("trail@example.com", PASSWORD).await);
    let third_session = crate::helpers::jwt_part(&third.token, 1)["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    assert_eq!(
        app.delete(&format!("/v1/auth/sessions/{third_session}"), &t.token)
            .await
            .status,
        200
    );

    let events = all_activity(&app, &t.token).await;
    assert_eq!(
        types(&events),
        [
            "session_revoked",
            "login_succeeded",
            "refresh_token_reused",
            "api_key_revoked",
            "api_key_created",
            "login_succeeded",
            "login_failed",
            "register",
        ],
        "newest first"
    );
    let session = crate::helpers::jwt_part(&t.token, 1)["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let register = first(&events, "register");
    assert_eq!(register["ip"], "127.0.0.1");
    assert_eq!(register["user_agent"], UA);
    assert_eq!(register["session_id"], session.as_str());
    assert!(register["id"].as_str().expect("id").starts_with("ev-"));
    assert!(register["at"].as_str().expect("at").ends_with('Z'));
    let failed = first(&events, "login_failed");
    assert_eq!(failed["user_agent"], UA);
    assert!(failed.get("session_id").is_none(), "no session: {failed}");
    assert_eq!(first(&events, "api_key_created")["key_id"], key_id.as_str());
    assert_eq!(first(&events, "api_key_revoked")["key_id"], key_id.as_str());
    assert_eq!(
        first(&events, "api_key_created")["session_id"],
        session.as_str()
    );
    assert!(first(&events, "login_succeeded")["user_agent"].is_null());
    // The operator sees the details the user's page leaves out, and who acted.
    let all = operator_entries(&app).await;
    let reason = all
        .iter()
        .find(|e| e["type"] == "login_failed")
        .expect("failed");
    assert_eq!(reason["detail"]["reason"], "wrong_password");
    assert_eq!(reason["actor"], "user");
    let reuse = all
        .iter()
        .find(|e| e["type"] == "refresh_token_reused")
        .expect("reuse");
    assert_eq!(reuse["actor"], "system");
    let revoked = all
        .iter()
        .find(|e| e["type"] == "session_revoked")
        .expect("revoked");
    assert_eq!(revoked["detail"]["revoked_session"], third_session.as_str());
    let created = all
        .iter()
        .find(|e| e["type"] == "api_key_created")
        .expect("created");
    assert_eq!(created["detail"]["name"], "ci");
    assert_eq!(created["detail"]["scopes"], "databases:read");
    assert_eq!(
        all.iter()
            .filter(|e| e["user_id"] == t.user_id.as_str())
            .count(),
        events.len(),
        "the page holds all of the user's events"
    );
    let r = app
        .post_as("/v1/auth/logout", Some(&t.token), json!({}))
        .await;
    assert_eq!(r.status, 200);
    let after = tokens(&app.login("trail@example.com", PASSWORD).await);
    let events = all_activity(&app, &after.token).await;
    assert_eq!(types(&events)[..2], ["login_succeeded", "logout"]);
    assert_eq!(events[1]["session_id"], session.as_str());
}

#[tokio::test]
async fn two_factor_password_and_email_changes_are_recorded() {
    let app = TestApp::spawn().await;
    let (t, secret, backup) = crate::two_factor::enabled_user(&app, "trail2fa@example.com").await;
    // A login with a backup code records that the code was spent.
    let r = app
        .post(
            "/v1/auth/login",
            json!({"email": "trail2fa@example.com", "password": PASSWORD, "totp_code": backup[0]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .post(
            "/v1/auth/login",
            json!({"email": "trail2fa@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.code(), "totp_required");
    let code = totp_at(&secret, app.clock.now_for_tests());
    let r = app
        .post_as(
            "/v1/auth/2fa/disable",
            Some(&t.token),
            json!({"password": PASSWORD, "code": code}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .post_as(
            "/v1/auth/password/change",
            Some(&t.token),
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .post_as(
            "/v1/auth/email/change",
            Some(&t.token),
            json!({"new_email": "trail2fa-new@example.com", "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 202);
    let change = crate::pages::filed_token(&app, "/confirm-email-change", &[]).await;
    let r = app
        .post("/v1/auth/email/change/confirm", json!({"token": change}))
        .await;
    assert_eq!(r.status, 200);
    let reset = crate::pages::reset_token(&app, "trail2fa-new@example.com").await;
    let r = app
        .post(
            "/v1/auth/password/reset",
            json!({"token": reset, "password": "after the reset 2026"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let fresh = tokens(
        &app.login("trail2fa-new@example.com", "after the reset 2026")
            .await,
    );
    let events = all_activity(&app, &fresh.token).await;
    assert_eq!(
        types(&events),
        [
            "login_succeeded",
            "password_reset",
            "email_changed",
            "password_changed",
            "totp_disabled",
            "login_failed",
            "backup_code_used",
            "login_succeeded",
            "totp_enabled",
            "totp_setup",
            "register",
        ]
    );
    let all = operator_entries(&app).await;
    let by_type = |kind: &str| {
        all.iter()
            .rfind(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .clone()
    };
    assert_eq!(by_type("login_failed")["detail"]["reason"], "missing_code");
    assert_eq!(
        by_type("email_changed")["detail"]["from"],
        "trail2fa@example.com"
    );
    assert_eq!(
        by_type("email_changed")["detail"]["to"],
        "trail2fa-new@example.com"
    );
    let spent = all
        .iter()
        .position(|e| e["type"] == "backup_code_used")
        .expect("spent");
    assert_eq!(all[spent - 1]["type"], "login_succeeded");
    assert_eq!(
        all[spent]["session_id"],
        all[spent - 1]["session_id"],
        "the code went with the login that spent it, in its transaction"
    );
}

#[tokio::test]
async fn guesses_that_lock_an_account_are_recorded_with_the_client_address() {
    let app = TestApp::spawn_with("[rate_limits]\ntrusted_proxies = [\"127.0.0.1/32\"]\n").await;
    let t = app.register("locked@example.com").await;
    let from_elsewhere = |pw: &'static str| {
        let app = &app;
        async move {
            let body = json!({"email": "locked@example.com", "password": pw}).to_string();
            app.request(
                "POST",
                "/v1/auth/login",
                &[
                    ("content-type", "application/json"),
                    ("x-forwarded-for", "203.0.113.7"),
                ],
                Some(body.into_bytes()),
            )
            .await
        }
    };
    for _ in 0..5 {
        assert_eq!(from_elsewhere("wrong password 1").await.status, 401);
    }
    assert_eq!(from_elsewhere(PASSWORD).await.status, 429, "locked");
    let all = operator_entries(&app).await;
    let mine: Vec<&Value> = all
        .iter()
        .filter(|e| e["user_id"] == t.user_id.as_str())
        .collect();
    let kinds: Vec<&str> = mine
        .iter()
        .map(|e| e["type"].as_str().expect("t"))
        .collect();
    assert_eq!(
        kinds,
        [
            "register",
            "login_failed",
            "login_failed",
            "login_failed",
            "login_failed",
            "login_failed",
            "account_locked",
            "login_failed",
        ]
    );
    assert!(
        mine[1..].iter().all(|e| e["ip"] == "203.0.113.7"),
        "{mine:#?}"
    );
    assert_eq!(mine[6]["actor"], "system");
    assert_eq!(mine[7]["detail"]["reason"], "locked");
}

#[tokio::test]
async fn a_user_sees_only_their_own_events_and_api_keys_get_403() {
    let app = TestApp::spawn().await;
    let a = app.register("mine-a@example.com").await;
    let b = app.register("mine-b@example.com").await;
    create_key(&app, &b.token, &["databases:read"]).await;
    let events = all_activity(&app, &a.token).await;
    assert_eq!(types(&events), ["register"]);
    let key = create_key(&app, &a.token, &["databases:read"]).await;
    let r = activity(&app, &key, "").await;
    assert_eq!((r.status, r.code()), (403, "session_required".to_string()));
    assert_eq!(activity(&app, "junk", "").await.status, 401);
    // Another user's event id as a cursor only pages through one's own.
    let b_events = all_activity(&app, &b.token).await;
    let b_newest = b_events[0]["id"].as_str().expect("id");
    let r = activity(&app, &a.token, &format!("?before={b_newest}")).await;
    assert!(r.json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .all(|e| !b_events.contains(e)));
}

#[tokio::test]
async fn pages_are_stable_while_new_events_arrive() {
    let app = TestApp::spawn().await;
    let t = app.register("pages@example.com").await;
    for _ in 0..6 {
        create_key(&app, &t.token, &["databases:read"]).await;
    }
    let page1 = activity(&app, &t.token, "?limit=3").await.json();
    let ids1: Vec<String> = page1["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids1.len(), 3);
    let next = page1["next"].as_str().expect("more").to_string();
    assert_eq!(next, ids1[2], "the cursor is the last event shown");
    // New events arrive between pages: the next page carries on below the cursor.
    for _ in 0..3 {
        create_key(&app, &t.token, &["databases:read"]).await;
    }
    let mut seen = ids1.clone();
    let mut cursor = Some(next);
    while let Some(c) = cursor {
        let page = activity(&app, &t.token, &format!("?limit=3&before={c}"))
            .await
            .json();
        for e in page["events"].as_array().expect("events") {
            seen.push(e["id"].as_str().expect("id").to_string());
        }
        cursor = page["next"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 7, "six keys and the registration: {seen:?}");
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup, seen, "no event twice");
    let numbers: Vec<u64> = seen
        .iter()
        .map(|id| id.trim_start_matches("ev-").parse().expect("n"))
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] > w[1]),
        "newest first: {numbers:?}"
    );
}

#[tokio::test]
async fn limit_and_cursor_are_checked() {
    let app = TestApp::spawn().await;
    let t = app.register("limits-audit@example.com").await;
    for q in ["?limit=0", "?limit=101", "?limit=ten", "?limit=-1"] {
        let r = activity(&app, &t.token, q).await;
        assert_eq!(
            (r.status, r.code()),
            (422, "validation_failed".to_string()),
            "{q}"
        );
        assert_eq!(r.json()["errors"][0]["field"], "limit");
    }
    for q in [
        "?before=",
        "?before=12",
        "?before=ev-",
        "?before=ev-1x",
        "?before=%FF",
    ] {
        let r = activity(&app, &t.token, q).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_request".to_string()),
            "{q}"
        );
    }
    let r = activity(&app, &t.token, "?before=ev-1").await;
    assert_eq!(r.json(), json!({"events": [], "next": null}));
    let r = activity(&app, &t.token, "?limit=100").await;
    assert_eq!(r.json()["events"].as_array().expect("events").len(), 1);
    assert!(r.json()["next"].is_null());
    let head = app
        .request(
            "HEAD",
            "/v1/auth/activity",
            &[("authorization", &format!("Bearer {}", t.token))],
            None,
        )
        .await;
    assert_eq!((head.status, head.body.len()), (200, 0));
}

#[tokio::test]
async fn nothing_secret_is_ever_recorded() {
    let app = TestApp::spawn().await;
    let (t, secret, backup) = crate::two_factor::enabled_user(&app, "secrets@example.com").await;
    let code = totp_at(&secret, app.clock.now_for_tests());
    let login = app
        .post(
            "/v1/auth/login",
            json!({"email": "secrets@example.com", "password": PASSWORD, "totp_code": code}),
        )
        .await;
    assert_eq!(login.status, 200);
    let second = tokens(&login);
    let refreshed = tokens(&app.refresh(&second.refresh_token).await);
    let key = create_key(&app, &t.token, &["databases:read"]).await;
    let reset = crate::pages::reset_token(&app, "secrets@example.com").await;
    let r = app
        .post(
            "/v1/auth/password/reset",
            json!({"token": reset, "password": NEW_PASSWORD, "totp_code": backup[1]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let wrong = app
        .post(
            "/v1/auth/login",
            json!({"email": "secrets@example.com", "password": "a guessed password 9"}),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let everything = serde_json::to_string(&operator_entries(&app).await).expect("json");
    assert!(everything.contains("password_reset"), "the log was read");
    for secret_value in [
        PASSWORD,
        NEW_PASSWORD,
        "a guessed password 9",
        &t.token,
        &t.refresh_token,
        &second.token,
        &second.refresh_token,
        &refreshed.refresh_token,
        &key,
        &key[key.len() - 12..],
        &secret,
        &code,
        &backup[0],
        &backup[1],
        &reset,
    ] {
        assert!(
            !everything.contains(secret_value),
            "{secret_value:?} reached the audit log"
        );
    }
    assert!(!everything.contains("$scrypt$"), "no password hash");
}

#[tokio::test]
async fn failed_logins_for_unknown_emails_are_counted_not_stored() {
    let app = TestApp::spawn().await;
    app.register("known-audit@example.com").await;
    let before = operator_entries(&app).await.len();
    for _ in 0..3 {
        let r = app.login("nobody-at-all@example.com", PASSWORD).await;
        assert_eq!(r.status, 401);
    }
    let after = operator_entries(&app).await;
    assert_eq!(after.len(), before, "nothing stored");
    assert!(!serde_json::to_string(&after)
        .expect("json")
        .contains("nobody-at-all"));
    let metrics = app.get("/metrics", None).await;
    let text = String::from_utf8(metrics.body.to_vec()).expect("utf-8");
    assert!(
        text.contains("cloudheed_login_failures_unknown_account_total 3"),
        "{text}"
    );
}

#[tokio::test]
async fn operator_changes_and_deletions_are_recorded_as_admin_and_survive_the_account() {
    let app = TestApp::spawn().await;
    let t = app.register("operated@example.com").await;
    crate::two_factor::enabled_user(&app, "operated-2fa@example.com").await;
    for (cmd, email) in [
        ("user_verify_email", "operated@example.com"),
        ("user_reset2fa", "operated-2fa@example.com"),
        ("user_delete", "operated@example.com"),
    ] {
        let r = admin(&app, json!({"cmd": cmd, "email": email})).await;
        assert_eq!(r["ok"], true, "{cmd}: {r}");
    }
    let listed = admin(
        &app,
        json!({"cmd": "audit_list", "user": "operated@example.com", "kind": null, "since": null, "limit": 100}),
    )
    .await;
    assert_eq!(
        listed["ok"], true,
        "a deleted account's trail is found by email: {listed}"
    );
    let rows = listed["result"].as_array().expect("rows");
    let kinds: Vec<&str> = rows
        .iter()
        .map(|e| e["type"].as_str().expect("t"))
        .collect();
    assert_eq!(kinds, ["account_deleted", "email_verified", "register"]);
    assert!(rows.iter().all(|e| e["user_id"] == t.user_id.as_str()));
    assert_eq!(rows[0]["actor"], "admin");
    assert_eq!(rows[0]["detail"]["email"], "operated@example.com");
    assert_eq!(rows[1]["actor"], "admin");
    let all = operator_entries(&app).await;
    let off = all
        .iter()
        .find(|e| e["type"] == "totp_disabled")
        .expect("reset-2fa");
    assert_eq!(off["actor"], "admin");
    assert!(off["ip"].is_null());
    // A user's own deletion is theirs.
    let u = app.register("self-deleted@example.com").await;
    let auth = format!("Bearer {}", u.token);
    let r = app
        .request(
            "DELETE",
            "/v1/auth/me",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Some(json!({"password": PASSWORD}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(r.status, 200);
    let all = operator_entries(&app).await;
    let gone = all.last().expect("last");
    assert_eq!(
        (gone["type"].as_str(), gone["actor"].as_str()),
        (Some("account_deleted"), Some("user"))
    );
    assert_eq!(gone["user_id"], u.user_id.as_str());
}

#[tokio::test]
async fn the_chain_verifies_names_a_damaged_entry_and_survives_retention() {
    let app = TestApp::spawn_with("[audit]\nretention = \"1d\"\n").await;
    let old = app.register("old-audit@example.com").await;
    create_key(&app, &old.token, &["databases:read"]).await;
    let verified = admin(&app, json!({"cmd": "audit_verify", "checkpoint": null})).await;
    assert_eq!(verified["result"]["verified"], 2, "{verified}");
    app.clock.advance(2 * 86_400);
    let new = app.register("new-audit@example.com").await;
    let pruned = admin(&app, json!({"cmd": "audit_prune"})).await;
    assert_eq!(pruned["result"]["pruned"], 2, "{pruned}");
    let verified = admin(&app, json!({"cmd": "audit_verify", "checkpoint": null})).await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["result"]["verified"], 1);
    assert_eq!(verified["result"]["pruned"], 2);
    assert_eq!(verified["result"]["head"], "ev-3");
    let kept = operator_entries(&app).await;
    assert!(
        kept.iter().all(|e| e["user_id"] != old.user_id.as_str()),
        "the old entries left the log and its index: {kept:#?}"
    );
    assert_eq!(types(&all_activity(&app, &new.token).await), ["register"]);
    // New entries link on from the anchor; then damage one through the store.
    create_key(&app, &new.token, &["databases:read"]).await;
    create_key(&app, &new.token, &["databases:read"]).await;
    app.state()
        .store
        .tamper_audit(4, cloudheed_auth::testing::store::Tamper::Edit)
        .await
        .expect("tamper");
    let broken = admin(&app, json!({"cmd": "audit_verify", "checkpoint": null})).await;
    assert_eq!(broken["ok"], false);
    let why = broken["error"].as_str().expect("error");
    assert!(why.contains("broken at entry ev-5"), "{why}");
}

#[tokio::test]
async fn every_reason_a_known_login_fails_and_a_users_own_verification_are_recorded() {
    let app = TestApp::spawn().await;
    let (t, _, _) = crate::two_factor::enabled_user(&app, "reasons@example.com").await;
    let r = app
        .post(
            "/v1/auth/login",
            json!({"email": "reasons@example.com", "password": PASSWORD, "totp_code": "000000"}),
        )
        .await;
    assert_eq!(r.code(), "invalid_totp_code");
    let off = app.register("reasons-off@example.com").await;
    let r = admin(
        &app,
        json!({"cmd": "user_disable", "email": "reasons-off@example.com"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        app.login("reasons-off@example.com", PASSWORD).await.code(),
        "account_disabled"
    );
    // The owner proves the address with the mailed link (file transport).
    let token = crate::pages::filed_token(&app, "/verify-email", &[]).await;
    let r = app
        .post("/v1/auth/email/verify", json!({ "token": token }))
        .await;
    assert_eq!(r.status, 200);
    let all = operator_entries(&app).await;
    let reason_of = |user: &str| {
        all.iter()
            .rfind(|e| e["type"] == "login_failed" && e["user_id"] == user)
            .map(|e| e["detail"]["reason"].clone())
    };
    assert_eq!(reason_of(&t.user_id), Some(json!("wrong_code")));
    assert_eq!(reason_of(&off.user_id), Some(json!("disabled")));
    let verified = all
        .iter()
        .find(|e| e["type"] == "email_verified")
        .expect("email_verified");
    assert_eq!(verified["actor"], "user");
    assert!(verified["user_id"].is_string());
    assert_eq!(verified["ip"], "127.0.0.1");

    // With verification required, a right password on an unverified account is on record too.
    let strict = TestApp::spawn_with("[accounts]\nrequire_verified_email = true").await;
    let u = strict.register("reasons-strict@example.com").await;
    assert_eq!(
        strict
            .login("reasons-strict@example.com", PASSWORD)
            .await
            .code(),
        "email_not_verified"
    );
    let all = operator_entries(&strict).await;
    let failed = all
        .iter()
        .find(|e| e["type"] == "login_failed" && e["user_id"] == u.user_id.as_str())
        .expect("login_failed");
    assert_eq!(failed["detail"]["reason"], "email_not_verified");
}

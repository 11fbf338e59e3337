//! The pages mailed links open, over plain HTTP: opening a link shows a form and acts on
//! nothing, the form's post acts once, the headers keep the token in the page, and nothing a
//! client puts in a link reaches the HTML. (`browser.rs` drives the reset page in Chromium.)

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{admin, totp_at, ClockExt, TestApp, TestResponse};
use crate::mail::{token_in, unquote, Logs};

const NEW_PASSWORD: &str = "a page-set passphrase 77";

fn html(r: &TestResponse) -> String {
    String::from_utf8(r.body.to_vec()).expect("utf-8")
}

async fn open(app: &TestApp, path_and_query: &str) -> TestResponse {
    app.request("GET", path_and_query, &[], None).await
}

/// Post a form as a browser does: urlencoded fields to the page's own path.
async fn submit(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> TestResponse {
    let body = form_body(fields);
    app.request(
        "POST",
        path,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body.into_bytes()),
    )
    .await
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    b' ' => "+".into(),
                    b => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// An operator's reset link (no mail needed), as the token in it.
pub(crate) async fn reset_token(app: &TestApp, email: &str) -> String {
    let answer = admin(app, json!({"cmd": "user_reset_password", "email": email})).await;
    let link = answer["result"]["reset_link"].as_str().expect("link");
    link.split("token=").nth(1).expect("token").to_string()
}

/// A `path` link the file transport wrote to `<data_dir>/mail/`, other than those in `known`.
pub(crate) async fn filed_token(app: &TestApp, path: &str, known: &[&str]) -> String {
    let dir = app.db_path().parent().expect("data dir").join("mail");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = std::fs::read_dir(&dir).ok().and_then(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .filter(|m| unquote(m).contains(&format!("{path}?token=")))
                .map(|m| token_in(&m, path))
                .find(|t| !known.contains(&t.as_str()))
        });
        if let Some(t) = fresh {
            return t;
        }
        assert!(Instant::now() < deadline, "no {path} mail in {dir:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn opening_a_link_shows_a_form_with_the_token_inside_and_strict_headers() {
    let app = TestApp::spawn().await;
    app.register("page-headers@example.com").await;
    let token = reset_token(&app, "page-headers@example.com").await;
    let r = open(&app, &format!("/reset-password?token={token}")).await;
    assert_eq!(r.status, 200);
    let h = |n: &str| r.header(n).unwrap_or_default().to_string();
    assert_eq!(h("content-type"), "text/html; charset=utf-8");
    assert_eq!(h("referrer-policy"), "no-referrer");
    assert_eq!(h("cache-control"), "no-store");
    assert_eq!(h("x-frame-options"), "DENY");
    let csp = h("content-security-policy");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    for part in [
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("script") && !csp.contains("unsafe"), "{csp}");
    let page = html(&r);
    assert!(
        page.contains(&format!(
            "<input type=\"hidden\" name=\"token\" value=\"{token}\">"
        )),
        "{page}"
    );
    // The form posts to the bare path (relative, so a proxy prefix is kept): no query, so the
    // token leaves the address bar with the next request.
    assert!(page.contains("<form method=\"post\" action=\"reset-password\">"));
    assert!(!page.contains("<script"), "no JavaScript: {page}");
    assert!(page.contains("<meta name=\"referrer\" content=\"no-referrer\">"));
    let head = app
        .request("HEAD", &format!("/reset-password?token={token}"), &[], None)
        .await;
    assert_eq!((head.status, head.body.len()), (200, 0));
}

#[tokio::test]
async fn the_reset_form_sets_the_password_once_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let t = app.register("page-reset@example.com").await;
    let token = reset_token(&app, "page-reset@example.com").await;
    for _ in 0..2 {
        let r = open(&app, &format!("/reset-password?token={token}")).await;
        assert_eq!(r.status, 200, "opening the link uses nothing up");
    }
    let fields = |pw: &'static str, again: &'static str| {
        vec![
            ("token", token.clone()),
            ("password", pw.to_string()),
            ("password_confirm", again.to_string()),
            ("totp_code", String::new()),
        ]
    };
    let post = |f: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            submit(app, "/reset-password", &f).await
        }
    };
    let r = post(fields(NEW_PASSWORD, "a different passphrase 1")).await;
    assert_eq!(r.status, 422);
    assert!(
        html(&r).contains("The two passwords differ"),
        "{}",
        html(&r)
    );
    assert!(
        html(&r).contains(&token),
        "the form comes back with its token"
    );
    let r = post(fields("short", "short")).await;
    assert_eq!(r.status, 422);
    assert!(html(&r).contains("too short"), "{}", html(&r));
    let r = post(fields(NEW_PASSWORD, NEW_PASSWORD)).await;
    assert_eq!(r.status, 200, "{}", html(&r));
    assert!(
        html(&r).contains("Your password is changed"),
        "{}",
        html(&r)
    );
    assert_eq!(app.me(&t.token).await.status, 401, "sessions ended");
    assert_eq!(
        app.login("page-reset@example.com", NEW_PASSWORD)
            .await
            .status,
        200
    );
    let r = post(fields("another passphrase 99", "another passphrase 99")).await;
    assert_eq!(r.status, 400, "single use");
    assert!(html(&r).contains("not valid any more"), "{}", html(&r));
    assert!(!html(&r).contains("<form"), "nothing left to submit");
}

#[tokio::test]
async fn the_reset_form_asks_for_the_second_factor_and_keeps_the_token() {
    let app = TestApp::spawn().await;
    let (_, secret, _) = crate::two_factor::enabled_user(&app, "page-2fa@example.com").await;
    let token = reset_token(&app, "page-2fa@example.com").await;
    let base = [
        ("token", token.as_str()),
        ("password", NEW_PASSWORD),
        ("password_confirm", NEW_PASSWORD),
    ];
    let r = submit(&app, "/reset-password", &base).await;
    assert_eq!(r.status, 401);
    assert!(html(&r).contains("enter a code"), "{}", html(&r));
    assert!(html(&r).contains(&token));
    let mut wrong = base.to_vec();
    wrong.push(("totp_code", "000000"));
    let r = submit(&app, "/reset-password", &wrong).await;
    assert_eq!(r.status, 401);
    let code = totp_at(&secret, app.clock.now_for_tests());
    let mut right = base.to_vec();
    right.push(("totp_code", &code));
    let r = submit(&app, "/reset-password", &right).await;
    assert_eq!(r.status, 200, "{}", html(&r));
    assert_eq!(
        app.login("page-2fa@example.com", NEW_PASSWORD).await.code(),
        "totp_required",
        "the second factor stays"
    );
}

#[tokio::test]
async fn the_verify_page_confirms_the_email_only_when_its_button_is_pressed() {
    let app = TestApp::spawn().await;
    let t = app.register("page-verify@example.com").await;
    let token = filed_token(&app, "/verify-email", &[]).await;
    let r = open(&app, &format!("/verify-email?token={token}")).await;
    assert_eq!(r.status, 200);
    assert!(html(&r).contains("action=\"verify-email\""));
    assert!(
        app.me(&t.token).await.json()["email_verified_at"].is_null(),
        "a mail scanner opening the link verifies nothing"
    );
    let r = submit(&app, "/verify-email", &[("token", &token)]).await;
    assert_eq!(r.status, 200, "{}", html(&r));
    assert!(html(&r).contains("is confirmed"));
    assert!(app.me(&t.token).await.json()["email_verified_at"].is_string());
    let r = submit(&app, "/verify-email", &[("token", &token)]).await;
    assert_eq!(r.status, 400, "single use");
}

#[tokio::test]
async fn the_email_change_page_moves_the_account_and_says_when_the_address_was_taken() {
    let app = TestApp::spawn().await;
    let t = app.register("page-old@example.com").await;
    let r = app
        .post_as(
            "/v1/auth/email/change",
            Some(&t.token),
            json!({"new_email": "page-new@example.com", "password": crate::helpers::PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let first = filed_token(&app, "/confirm-email-change", &[]).await;
    let token = first.clone();
    let r = open(&app, &format!("/confirm-email-change?token={token}")).await;
    assert_eq!(r.status, 200);
    assert!(html(&r).contains("action=\"confirm-email-change\""));
    let r = submit(&app, "/confirm-email-change", &[("token", &token)]).await;
    assert_eq!(r.status, 200, "{}", html(&r));
    assert_eq!(
        app.me(&t.token).await.json()["email"],
        "page-new@example.com"
    );

    // A second change whose address is registered meanwhile: 409, said in words.
    let r = app
        .post_as(
            "/v1/auth/email/change",
            Some(&t.token),
            json!({"new_email": "page-race@example.com", "password": crate::helpers::PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 202);
    let token = filed_token(&app, "/confirm-email-change", &[&first]).await;
    app.register("page-race@example.com").await;
    let r = submit(&app, "/confirm-email-change", &[("token", &token)]).await;
    assert_eq!(r.status, 409);
    assert!(html(&r).contains("already exists"), "{}", html(&r));
}

#[tokio::test]
async fn nothing_from_the_link_or_the_form_reaches_the_html_unescaped() {
    let app = TestApp::spawn().await;
    for query in [
        "",
        "?token=",
        "?token=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "?token=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        "?other=1",
    ] {
        let r = open(&app, &format!("/reset-password{query}")).await;
        assert_eq!(r.status, 400, "{query}");
        let page = html(&r);
        assert!(page.contains("incomplete or damaged"), "{page}");
        assert!(
            !page.contains("<script") && !page.contains("<img"),
            "{page}"
        );
        assert!(!page.contains("<form"), "{page}");
    }
    let r = submit(
        &app,
        "/verify-email",
        &[("token", "\"><script>alert(1)</script>")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(!html(&r).contains("<script"));
    // The API's media type is not a form: refused, as an HTML page.
    let r = app
        .request(
            "POST",
            "/verify-email",
            &[("content-type", "application/json")],
            Some(b"{\"token\":\"x\"}".to_vec()),
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = app.request("PUT", "/verify-email", &[], None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
}

#[tokio::test]
async fn no_token_reaches_a_log_line() {
    let logs = Logs::capture();
    let app = TestApp::spawn().await;
    app.register("page-logs@example.com").await;
    let token = reset_token(&app, "page-logs@example.com").await;
    open(&app, &format!("/reset-password?token={token}")).await;
    let r = submit(
        &app,
        "/reset-password",
        &[
            ("token", &token),
            ("password", NEW_PASSWORD),
            ("password_confirm", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let text = logs.text();
    assert!(text.lines().count() >= 3, "logs were captured:\n{text}");
    assert!(!text.contains(&token), "a token reached the logs:\n{text}");
    assert!(!text.contains(NEW_PASSWORD), "{text}");
    assert!(
        !text.contains("token="),
        "a query reached the logs:\n{text}"
    );
}

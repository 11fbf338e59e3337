//! The reset page end to end in a real browser: a forgotten password mailed through a real
//! relay, the link opened in headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver's plain HTTP), the form filled and sent without any JavaScript of ours.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::helpers::{require_tool, tokens, TestApp, PASSWORD};
use crate::mail::{relay, smtp_config, token_in, with_subject};

const NEW_PASSWORD: &str = "set in a real browser 2026";
/// WebDriver's name for an element reference (W3C WebDriver §12).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port with one headless Chromium session; both end on drop.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    /// `None` where Chromium is missing (locally only: under CI that fails).
    async fn start() -> Option<Browser> {
        let driver_bin = require_tool("chromedriver")?;
        require_tool("chromium")?;
        let port = StdListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = browser.try_call("GET", "/status", None).await {
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        }}}});
        let created = browser.call("POST", "/session", Some(caps)).await;
        browser.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Some(browser)
    }

    async fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.port))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .expect("request");
        let resp = sender.send_request(req).await.ok()?;
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice(&bytes).ok()
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|| panic!("WebDriver {method} {path} failed"))
    }

    /// A command of this session.
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self
            .call(method, &format!("/session/{}{path}", self.session), body)
            .await;
        assert!(v["value"]["error"].is_null(), "{method} {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .expect("url")
            .into()
    }

    async fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .await
            .as_str()
            .expect("source")
            .into()
    }

    async fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().expect("element").to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.cmd("POST", &format!("/element/{el}/clear"), Some(json!({})))
            .await;
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.cmd("POST", &format!("/element/{el}/click"), Some(json!({})))
            .await;
    }

    /// Wait until the page shows `text`; on timeout save a screenshot next to the test binary
    /// and fail with the page's source.
    async fn wait_for_text(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            if Instant::now() > deadline {
                let shot = self.cmd("GET", "/screenshot", None).await;
                let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join("reset-page-failure.png.base64");
                let _ = std::fs::write(&path, shot.as_str().unwrap_or_default());
                panic!("{text:?} never showed (screenshot in {path:?}):\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; chromedriver goes with a kill.
        if !self.session.is_empty() {
            use std::io::Write;
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = write!(
                    s,
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session, self.port
                );
                let _ = std::io::Read::read(&mut s, &mut [0u8; 512]);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_on_the_page_in_a_real_browser() {
    let Some((smtp, port, _dir)) = relay() else {
        return;
    };
    let Some(browser) = Browser::start().await else {
        return;
    };
    let config = smtp_config(port).replace("[email]\n", "[email]\nverify_on_register = false\n");
    let app = TestApp::spawn_with(&config).await;
    app.register("browser@example.com").await;
    let elsewhere = tokens(&app.login("browser@example.com", PASSWORD).await);
    let r = app
        .post(
            "/v1/auth/password/forgot",
            json!({"email": "browser@example.com"}),
        )
        .await;
    assert_eq!(r.status, 202);
    let got = smtp.wait_for(1).await;
    let mail = with_subject(&got, "reset your password");
    let token = token_in(mail.first().expect("a reset mail"), "/reset-password");
    let link = format!("http://{}/reset-password?token={token}", app.addr);

    browser.goto(&link).await;
    browser.wait_for_text("Choose a new password").await;
    // The page's one inline style applied under its CSP (26rem): the hash in the header is right.
    let width = browser
        .script("return getComputedStyle(document.querySelector('main')).maxWidth")
        .await;
    assert_eq!(width, "416px", "the inline style was blocked");

    // A typo in the second field: the server says so and hands the form back.
    browser.type_into("#password", NEW_PASSWORD).await;
    browser
        .type_into("#password_confirm", "set in a real browser 2025")
        .await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("The two passwords differ").await;
    let after_post = browser.url().await;
    assert_eq!(
        after_post,
        format!("http://{}/reset-password", app.addr),
        "the token left the address bar"
    );

    browser.type_into("#password", NEW_PASSWORD).await;
    browser.type_into("#password_confirm", NEW_PASSWORD).await;
    browser.click("button[type=submit]").await;
    let done = browser.wait_for_text("Your password is changed").await;
    assert!(!done.contains(&token), "the token is gone from the page");

    assert_eq!(
        app.refresh(&elsewhere.refresh_token).await.status,
        401,
        "every session ended"
    );
    assert_eq!(app.login("browser@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        app.login("browser@example.com", NEW_PASSWORD).await.status,
        200
    );
    // The link is spent: opening it again shows the form, sending it says so.
    browser.goto(&link).await;
    browser
        .type_into("#password", "one more passphrase 11")
        .await;
    browser
        .type_into("#password_confirm", "one more passphrase 11")
        .await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("not valid any more").await;
}

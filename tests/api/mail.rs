//! The mail outbox and its transports against a real SMTP server (Debian's python3-aiosmtpd,
//! saving to a maildir): delivery with both parts, retries while the relay is down (across a
//! restart of ours), the file transport's private files, and bodies that never reach a log.

use std::io::Write;
use std::net::TcpListener as StdListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudheed_auth::testing::mail::{queue, OutgoingMail};

use serde_json::json;

use crate::helpers::TestApp;

/// A one-time link as use cases will put in bodies; it must reach the mailbox and no log.
const TOKEN: &str = "tok_Zm9vYmFyYmF6cXV4cXV1eA";

fn mail(to: &str) -> OutgoingMail {
    OutgoingMail {
        to: to.into(),
        subject: "Reset your Cloudheed password".into(),
        text: format!("Open http://127.0.0.1/reset-password?token={TOKEN}\r\n"),
        html: format!("<p><a href=\"http://127.0.0.1/reset-password?token={TOKEN}\">Reset</a></p>"),
    }
}

/// A Python 3 that has aiosmtpd. Under CI (`.ci/run` installs python3-aiosmtpd) a missing one
/// fails the test; locally the test is skipped with the reason printed.
fn require_aiosmtpd() -> Option<PathBuf> {
    // Debian's interpreter first: a pyenv or venv `python3` earlier on PATH lacks the package.
    let found = ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3-aiosmtpd is not installed; .ci/run installs it and CI needs it"
        );
        eprintln!(
            "skipped: python3-aiosmtpd is not installed (apt-get install it to run this test)"
        );
    }
    found.map(PathBuf::from)
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// aiosmtpd on 127.0.0.1:`port`, saving what it receives to `<dir>/maildir`; killed on drop.
pub(crate) struct Smtp {
    child: Child,
    maildir: PathBuf,
}

impl Smtp {
    fn start(python: &Path, port: u16, dir: &Path) -> Smtp {
        let maildir = dir.join("maildir");
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let smtp = Smtp { child, maildir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        smtp
    }

    /// The messages delivered so far, as text.
    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
            .collect()
    }

    /// Wait until `n` messages have arrived.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every log line written while it is alive, on this thread (the current-thread test runtime
/// runs the server's tasks, the delivery worker among them), at every level.
pub(crate) struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub(crate) fn capture() -> Logs {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        Logs {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().expect("lock")).into_owned()
    }

    /// The body's link is nowhere in the logs, which were captured (some lines at least: with
    /// other tests registering and dropping their own thread-local subscribers at the same time,
    /// tracing's per-callsite interest cache may now and then skip an event of ours, so a
    /// missing `expect` is reported rather than failed).
    fn assert_no_body(&self, expect: &str) {
        let text = self.text();
        assert!(text.lines().count() >= 3, "logs were captured:\n{text}");
        if !text.contains(expect) {
            eprintln!("note: {expect:?} was not captured this time");
        }
        assert!(!text.contains(TOKEN), "a body reached the logs:\n{text}");
        assert!(
            !text.contains("reset-password"),
            "a body reached the logs:\n{text}"
        );
    }
}

/// Quoted-printable (RFC 2045 §6.7) decoded, as mail clients show it; other text unchanged.
pub(crate) fn unquote(qp: &str) -> String {
    let joined = qp.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let b = joined.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A relay on a free port with its maildir in a temp dir (kept alive by the caller), or `None`
/// where aiosmtpd is missing (locally only).
pub(crate) fn relay() -> Option<(Smtp, u16, tempfile::TempDir)> {
    let python = require_aiosmtpd()?;
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let smtp = Smtp::start(&python, port, dir.path());
    Some((smtp, port, dir))
}

pub(crate) fn smtp_config(port: u16) -> String {
    format!(
        "[email]\ntransport = \"smtp\"\nsmtp_url = \"smtp://127.0.0.1:{port}\"\nfrom = \"Cloudheed <auth@example.test>\"\n"
    )
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let r = app.get("/metrics", None).await;
    let text = String::from_utf8(r.body.to_vec()).expect("utf-8");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in:\n{text}"))
        .parse()
        .expect("number")
}

#[tokio::test]
async fn a_queued_message_arrives_with_from_to_subject_and_both_parts() {
    let Some((smtp, port, _dir)) = relay() else {
        return;
    };
    let logs = Logs::capture();
    let app = TestApp::spawn_with(&smtp_config(port)).await;
    queue(&app.state(), mail("ann@example.com"))
        .await
        .expect("queued");
    let got = smtp.wait_for(1).await;
    let m = &got[0];
    for want in [
        "From: Cloudheed <auth@example.test>",
        "To: ann@example.com",
        "Subject: Reset your Cloudheed password",
        "Message-ID: <mail-",
        "multipart/alternative",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Type: text/html; charset=utf-8",
        &format!("Open http://127.0.0.1/reset-password?token={TOKEN}"),
    ] {
        assert!(m.contains(want), "{want:?} in:\n{m}");
    }
    let html = m
        .split("Content-Type: text/html; charset=utf-8")
        .nth(1)
        .expect("html part");
    let want = format!("<a href=\"http://127.0.0.1/reset-password?token={TOKEN}\">Reset</a>");
    assert!(
        unquote(html).contains(&want),
        "{want:?} in the HTML part:\n{m}"
    );
    // Handed over, so gone from the outbox.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, "cloudheed_mail_queued").await != 0.0 {
        assert!(Instant::now() < deadline, "still queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&app, "cloudheed_mail_sent_total").await, 1.0);
    assert_eq!(metric(&app, "cloudheed_mail_failed_total").await, 0.0);
    app.stop().await;
    logs.assert_no_body("mail sent");
}

#[tokio::test]
async fn with_the_relay_down_mail_stays_queued_and_goes_once_it_is_up_even_after_a_restart() {
    let Some(python) = require_aiosmtpd() else {
        return;
    };
    let logs = Logs::capture();
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let config = smtp_config(port);
    let app = TestApp::spawn_with(&config).await;
    queue(&app.state(), mail("bob@example.com"))
        .await
        .expect("queued");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, "cloudheed_mail_failed_total").await < 1.0 {
        assert!(Instant::now() < deadline, "no delivery was tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&app, "cloudheed_mail_queued").await, 1.0);
    assert_eq!(metric(&app, "cloudheed_mail_sent_total").await, 0.0);

    // The outbox is on disk: a restart keeps the message.
    let app = app.restart_with(&config).await;
    assert_eq!(metric(&app, "cloudheed_mail_queued").await, 1.0);
    let smtp = Smtp::start(&python, port, tmp.path());
    // Not yet due: the first retry waits 5 s of the (injected) clock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(smtp.messages().is_empty(), "sent before its retry was due");
    app.clock.advance(3600);
    let got = smtp.wait_for(1).await;
    assert!(got[0].contains("To: bob@example.com"), "{}", got[0]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, "cloudheed_mail_queued").await != 0.0 {
        assert!(Instant::now() < deadline, "still queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
    app.stop().await;
    logs.assert_no_body("mail not sent; will retry");
    logs.assert_no_body("mail sent");
}

#[tokio::test]
async fn a_message_the_relay_never_takes_is_dropped_after_max_attempts() {
    let logs = Logs::capture();
    let port = free_port();
    let app = TestApp::spawn_with(&format!("{}max_attempts = 2\n", smtp_config(port))).await;
    queue(&app.state(), mail("cy@example.com"))
        .await
        .expect("queued");
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&app, "cloudheed_mail_abandoned_total").await < 1.0 {
        assert!(Instant::now() < deadline, "never given up");
        app.clock.advance(60);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&app, "cloudheed_mail_failed_total").await, 2.0);
    assert_eq!(metric(&app, "cloudheed_mail_queued").await, 0.0);
    app.stop().await;
    let text = logs.text();
    let gave_up = text
        .lines()
        .find(|l| l.contains("gave up"))
        .unwrap_or_else(|| panic!("no line says it gave up:\n{text}"));
    assert!(gave_up.contains("ERROR"), "{gave_up}");
    assert!(gave_up.contains("cy@example.com"), "{gave_up}");
    logs.assert_no_body("gave up");
}

#[tokio::test]
async fn the_file_transport_writes_one_private_file_per_message() {
    let app = TestApp::spawn().await;
    let dir = app.dir.path().join("data").join("mail");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let id = queue(&app.state(), mail("dee@example.com"))
        .await
        .expect("queued");
    let file = dir.join(format!("{id}.eml"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !file.exists() {
        assert!(Instant::now() < deadline, "no file written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mode(&file), 0o600);
    // Written with create_new, complete once the outbox lets go of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, "cloudheed_mail_queued").await != 0.0 {
        assert!(Instant::now() < deadline, "still queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("To: dee@example.com"), "{text}");
    assert!(
        text.contains("Subject: Reset your Cloudheed password"),
        "{text}"
    );
    assert!(text.contains("text/html"), "{text}");
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 1);
}

#[tokio::test]
async fn security_notices_reach_the_owner_without_a_link() {
    let Some((smtp, port, _dir)) = relay() else {
        return;
    };
    let app = TestApp::spawn_with(&smtp_config(port)).await;
    let t = app.register("notice@example.com").await;
    let r = app
        .post_as(
            "/v1/auth/api-keys",
            Some(&t.token),
            json!({"name": "ci <deploy>", "scopes": ["databases:read"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .post_as(
            "/v1/auth/password/change",
            Some(&t.token),
            json!({"current_password": crate::helpers::PASSWORD, "new_password": "a brand new passphrase 42"}),
        )
        .await;
    assert_eq!(r.status, 200);
    // The verification mail of the registration, then the two notices.
    let got = smtp.wait_for(3).await;
    let got: Vec<String> = got
        .into_iter()
        .filter(|m| !m.contains("verify your email address"))
        .collect();
    let subjects: Vec<&str> = got
        .iter()
        .filter_map(|m| m.lines().find(|l| l.starts_with("Subject: ")))
        .collect();
    for want in [
        "Subject: Cloudheed: a new API key was created",
        "Subject: Cloudheed: your password was changed",
    ] {
        assert!(subjects.contains(&want), "{want:?} in {subjects:?}");
    }
    for m in &got {
        assert!(m.contains("To: notice@example.com"), "{m}");
        assert!(!unquote(m).contains("href"), "no link in a notice:\n{m}");
    }
    assert!(
        got.iter().any(|m| unquote(m).contains("&lt;deploy&gt;")),
        "the key's name is escaped in the HTML part"
    );
}

/// The access token of a login answer.
fn tokens_of(r: crate::helpers::TestResponse) -> String {
    crate::helpers::tokens(&r).token
}

/// The token of the `path` link in a delivered message.
pub(crate) fn token_in(message: &str, path: &str) -> String {
    let text = unquote(message);
    let marker = format!("{path}?token=");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {path} link in:\n{text}"))
        + marker.len();
    text[start..start + 43].to_string()
}

/// The delivered messages whose subject contains `subject`.
pub(crate) fn with_subject<'a>(messages: &'a [String], subject: &str) -> Vec<&'a String> {
    messages
        .iter()
        .filter(|m| {
            m.lines()
                .any(|l| l.starts_with("Subject: ") && l.contains(subject))
        })
        .collect()
}

async fn verify(app: &TestApp, token: &str) -> crate::helpers::TestResponse {
    app.post("/v1/auth/email/verify", json!({ "token": token }))
        .await
}

#[tokio::test]
async fn register_mails_a_link_that_verifies_the_email_once() {
    let Some((smtp, port, _dir)) = relay() else {
        return;
    };
    let app = TestApp::spawn_with(&smtp_config(port)).await;
    let t = app.register("verify@example.com").await;
    assert!(app.me(&t.token).await.json()["email_verified_at"].is_null());
    let got = smtp.wait_for(1).await;
    let mails = with_subject(&got, "verify your email address");
    assert_eq!(mails.len(), 1, "{got:?}");
    assert!(mails[0].contains("To: verify@example.com"));
    let token = token_in(mails[0], "/verify-email");
    let r = verify(&app, &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json(), json!({"message_code": "email_verified"}));
    assert!(app.me(&t.token).await.json()["email_verified_at"].is_string());
    let r = verify(&app, &token).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_token".to_string()),
        "single use"
    );
    let r = verify(&app, &"A".repeat(43)).await;
    assert_eq!((r.status, r.code()), (400, "invalid_token".to_string()));
    let r = app
        .post_as("/v1/auth/email/verification", Some(&t.token), json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (409, "email_already_verified".to_string())
    );
}

#[tokio::test]
async fn a_new_link_voids_the_old_one_and_links_expire() {
    let Some((smtp, port, _dir)) = relay() else {
        return;
    };
    let app = TestApp::spawn_with(&format!(
        "{}[rate_limits]\nenabled = true\n",
        smtp_config(port)
    ))
    .await;
    let t = app.register("relink@example.com").await;
    smtp.wait_for(1).await;
    let r = app
        .post_as("/v1/auth/email/verification", Some(&t.token), json!({}))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.json(), json!({"message_code": "verification_email_sent"}));
    let r = app
        .post_as("/v1/auth/email/verification", Some(&t.token), json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (429, "rate_limited".to_string()),
        "one a minute"
    );
    let got = smtp.wait_for(2).await;
    let mut tokens: Vec<String> = with_subject(&got, "verify your email address")
        .iter()
        .map(|m| token_in(m, "/verify-email"))
        .collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 2);
    // Exactly one of the two still works: the newer.
    let results = [
        verify(&app, &tokens[0]).await.status,
        verify(&app, &tokens[1]).await.status,
    ];
    assert!(
        results.contains(&200) && results.contains(&400),
        "{results:?}"
    );
    // Expiry: a fresh link, used after its 24 hours.
    app.register("late@example.com").await;
    let got = smtp.wait_for(3).await;
    let late = with_subject(&got, "verify your email address")
        .iter()
        .map(|m| token_in(m, "/verify-email"))
        .find(|tok| !tokens.contains(tok))
        .expect("a third link");
    app.clock.advance(24 * 3600);
    let r = verify(&app, &late).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_token".to_string()),
        "expired"
    );
    let fresh = tokens_of(
        app.login("late@example.com", crate::helpers::PASSWORD)
            .await,
    );
    assert!(
        app.me(&fresh).await.json()["email_verified_at"].is_null(),
        "an expired link verified nothing"
    );
}

#[tokio::test]
async fn without_mail_the_mail_endpoints_are_not_configured_and_forgot_stays_generic() {
    let app = TestApp::spawn_with("[email]\ntransport = \"none\"").await;
    let t = app.register("nomail@example.com").await;
    let r = app
        .post_as("/v1/auth/email/verification", Some(&t.token), json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (503, "email_not_configured".to_string())
    );
    let r = app
        .post_as(
            "/v1/auth/email/change",
            Some(&t.token),
            json!({"new_email": "nomail-new@example.com", "password": crate::helpers::PASSWORD}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (503, "email_not_configured".to_string())
    );
    // Forgot stays generic: the same 202 for a known and an unknown address, and nothing queued.
    let known = forgot(&app, "nomail@example.com").await;
    let unknown = forgot(&app, "nobody-nomail@example.com").await;
    assert_eq!(known.status, 202);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(metric(&app, "cloudheed_mail_queued").await, 0.0);
}

async fn forgot(app: &TestApp, email: &str) -> crate::helpers::TestResponse {
    app.post("/v1/auth/password/forgot", json!({ "email": email }))
        .await
}

async fn reset(app: &TestApp, body: serde_json::Value) -> crate::helpers::TestResponse {
    app.post("/v1/auth/password/reset", body).await
}

const RESET_TO: &str = "a reset passphrase 2026";

#[tokio::test]
async fn a_forgotten_password_is_reset_through_the_mailbox() {
    let Some((smtp, port, _dir)) = relay() else {
        return;
    };
    let config = smtp_config(port).replace("[email]\n", "[email]\nverify_on_register = false\n");
    let app = TestApp::spawn_with(&config).await;
    let t = app.register("forgot@example.com").await;
    let known = forgot(&app, "forgot@example.com").await;
    let unknown = forgot(&app, "nobody-here@example.com").await;
    assert_eq!(known.status, 202);
    assert_eq!(
        (unknown.status, &unknown.body),
        (known.status, &known.body),
        "the same answer for an unknown address"
    );
    assert_eq!(
        known.json(),
        json!({"message_code": "password_reset_email_sent"})
    );
    let got = smtp.wait_for(1).await;
    let mails = with_subject(&got, "reset your password");
    assert_eq!(mails.len(), 1, "nothing for the unknown address: {got:?}");
    assert!(mails[0].contains("To: forgot@example.com"));
    let token = token_in(mails[0], "/reset-password");
    let r = reset(&app, json!({"token": token, "password": "short"})).await;
    assert_eq!(r.status, 422, "the policy applies");
    let r = reset(&app, json!({"token": token, "password": RESET_TO})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json(), json!({"message_code": "password_reset"}));
    assert_eq!(
        app.refresh(&t.refresh_token).await.status,
        401,
        "every session ended"
    );
    assert_eq!(
        app.login("forgot@example.com", crate::helpers::PASSWORD)
            .await
            .status,
        401
    );
    let fresh = app.login("forgot@example.com", RESET_TO).await;
    assert_eq!(fresh.status, 200);
    let me = app.me(&tokens_of(fresh)).await.json();
    assert!(
        me["email_verified_at"].is_string(),
        "the mailbox was proven"
    );
    let r = reset(
        &app,
        json!({"token": token, "password": "yet another passphrase 7"}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_token".to_string()),
        "single use"
    );
    // A later link expires after email.reset_ttl (30 minutes).
    forgot(&app, "forgot@example.com").await;
    let got = smtp.wait_for(3).await;
    let later = with_subject(&got, "reset your password")
        .iter()
        .map(|m| token_in(m, "/reset-password"))
        .find(|tok| *tok != token)
        .expect("a second link");
    app.clock.advance(31 * 60);
    let r = reset(
        &app,
        json!({"token": later, "password": "yet another passphrase 7"}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_token".to_string()),
        "expired"
    );
}

#[tokio::test]
async fn a_reset_needs_the_second_factor_too() {
    let Some((smtp, port, _dir)) = relay() else {
        return;
    };
    let app = TestApp::spawn_with(&smtp_config(port)).await;
    let (_, secret, _) = crate::two_factor::enabled_user(&app, "reset2fa@example.com").await;
    forgot(&app, "reset2fa@example.com").await;
    let token = loop {
        let got = smtp.wait_for(1).await;
        if let Some(m) = with_subject(&got, "reset your password").first() {
            break token_in(m, "/reset-password");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = reset(&app, json!({"token": token, "password": RESET_TO})).await;
    assert_eq!((r.status, r.code()), (401, "totp_required".to_string()));
    let r = reset(
        &app,
        json!({"token": token, "password": RESET_TO, "totp_code": "000000"}),
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "invalid_totp_code".to_string()));
    use crate::helpers::ClockExt;
    let code = crate::helpers::totp_at(&secret, app.clock.now_for_tests());
    let r = reset(
        &app,
        json!({"token": token, "password": RESET_TO, "totp_code": code}),
    )
    .await;
    assert_eq!(r.status, 200, "the token stayed usable: {:?}", r.body);
    assert_eq!(
        app.login("reset2fa@example.com", RESET_TO).await.code(),
        "totp_required"
    );
}

#[tokio::test]
async fn an_email_change_is_confirmed_from_the_new_address() {
    let Some((smtp, port, _dir)) = relay() else {
        return;
    };
    let config = smtp_config(port).replace("[email]\n", "[email]\nverify_on_register = false\n");
    let app = TestApp::spawn_with(&config).await;
    let t = app.register("old@example.com").await;
    app.register("taken@example.com").await;
    let ask = |new_email: &'static str, password: &'static str| {
        let token = t.token.clone();
        let app = &app;
        async move {
            app.post_as(
                "/v1/auth/email/change",
                Some(&token),
                json!({"new_email": new_email, "password": password}),
            )
            .await
        }
    };
    let r = ask("taken@example.com", crate::helpers::PASSWORD).await;
    assert_eq!((r.status, r.code()), (409, "email_taken".to_string()));
    let r = ask("new@example.com", "not the password").await;
    assert_eq!((r.status, r.code()), (422, "invalid_password".to_string()));
    let r = ask("not an address", crate::helpers::PASSWORD).await;
    assert_eq!(r.status, 422);
    let r = ask("new@example.com", crate::helpers::PASSWORD).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.json(), json!({"message_code": "email_change_requested"}));
    let got = smtp.wait_for(2).await;
    let confirm = with_subject(&got, "confirm your new email address");
    assert_eq!(confirm.len(), 1, "{got:?}");
    assert!(confirm[0].contains("To: new@example.com"));
    let notice = with_subject(&got, "a change of your email address was asked for");
    assert_eq!(notice.len(), 1);
    assert!(notice[0].contains("To: old@example.com"));
    assert_eq!(
        app.me(&t.token).await.json()["email"],
        "old@example.com",
        "nothing changes before the confirmation"
    );
    let token = token_in(confirm[0], "/confirm-email-change");
    let r = app
        .post("/v1/auth/email/change/confirm", json!({ "token": token }))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json(), json!({"message_code": "email_changed"}));
    let me = app.me(&t.token).await.json();
    assert_eq!(me["email"], "new@example.com");
    assert!(me["email_verified_at"].is_string());
    assert_eq!(
        app.login("new@example.com", crate::helpers::PASSWORD)
            .await
            .status,
        200
    );
    assert_eq!(
        app.login("old@example.com", crate::helpers::PASSWORD)
            .await
            .status,
        401
    );
    let r = app
        .post("/v1/auth/email/change/confirm", json!({ "token": token }))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_token".to_string()),
        "single use"
    );
    // The race: the address is taken between the request and the confirmation.
    let r = ask("race@example.com", crate::helpers::PASSWORD).await;
    assert_eq!(r.status, 202);
    let got = smtp.wait_for(4).await;
    let token = with_subject(&got, "confirm your new email address")
        .iter()
        .find(|m| m.contains("To: race@example.com"))
        .map(|m| token_in(m, "/confirm-email-change"))
        .expect("the second confirmation");
    app.register("race@example.com").await;
    let r = app
        .post("/v1/auth/email/change/confirm", json!({ "token": token }))
        .await;
    assert_eq!((r.status, r.code()), (409, "email_taken".to_string()));
    assert_eq!(app.me(&t.token).await.json()["email"], "new@example.com");
}

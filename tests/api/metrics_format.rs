//! `/metrics` speaks Prometheus text 0.0.4 by default and OpenMetrics on request; promtool agrees.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::{require_tool, TestApp, PASSWORD};

const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_SCRAPER: &str = "application/openmetrics-text;version=1.0.0,\
     application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A server whose every family has samples: requests, latency, and all but rare login outcomes.
async fn busy_app() -> TestApp {
    let app = TestApp::spawn().await;
    let t = app.register("scraped@example.com").await;
    assert_eq!(app.login("scraped@example.com", PASSWORD).await.status, 200);
    assert_eq!(
        app.login("scraped@example.com", "wrong password here")
            .await
            .status,
        401
    );
    assert_eq!(app.me(&t.token).await.status, 200);
    assert_eq!(app.me("junk").await.status, 401);
    app.post_as(
        "/v1/auth/api-keys",
        Some(&t.token),
        json!({"name": "k", "scopes": ["databases:read"]}),
    )
    .await;
    app
}

async fn scrape(app: &TestApp, accept: Option<&str>) -> (String, String) {
    let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
    let r = app.request("GET", "/metrics", &headers, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("vary"), Some("accept"));
    let content_type = r.header("content-type").unwrap_or_default().to_string();
    (
        content_type,
        String::from_utf8(r.body.to_vec()).expect("UTF-8"),
    )
}

/// `promtool check metrics [flags]` on `text`: its exit code and everything it printed.
fn promtool(promtool: &std::path::Path, flags: &[&str], text: &str) -> (Option<i32>, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), printed)
}

#[tokio::test]
async fn plain_scrapes_get_prometheus_text_and_scrapers_that_ask_get_openmetrics() {
    let app = busy_app().await;
    for accept in [
        None,
        Some("text/plain"),
        Some("*/*"),
        Some("text/plain;q=0.9, application/openmetrics-text;q=0.1"),
    ] {
        let (content_type, text) = scrape(&app, accept).await;
        assert_eq!(content_type, PROMETHEUS, "Accept: {accept:?}");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("# TYPE cloudheed_logins_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"cloudheed_logins_total{outcome="invalid"} 1"#),
            "{text}"
        );
    }
    for accept in [
        "application/openmetrics-text",
        "application/openmetrics-text; version=0.0.1",
        PROMETHEUS_SCRAPER,
    ] {
        let (content_type, text) = scrape(&app, Some(accept)).await;
        assert_eq!(content_type, OPENMETRICS, "Accept: {accept}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE cloudheed_logins counter\n"), "{text}");
        assert!(
            text.contains(r#"cloudheed_logins_total{outcome="invalid"} 1"#),
            "{text}"
        );
    }
}

#[tokio::test]
async fn every_family_has_help_and_promtool_finds_no_problem() {
    let app = busy_app().await;
    let (_, prometheus) = scrape(&app, None).await;
    let (_, openmetrics) = scrape(&app, Some(PROMETHEUS_SCRAPER)).await;
    for text in [&prometheus, &openmetrics] {
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .collect();
        assert_eq!(types, 15, "{text}");
        assert_eq!(helps.len(), types, "{text}");
        assert!(
            helps
                .iter()
                .all(|h| h.split_once(' ').is_some_and(|(_, help)| !help.is_empty())),
            "{text}"
        );
    }

    let Some(promtool_path) = require_tool("promtool") else {
        return;
    };
    let (code, printed) = promtool(&promtool_path, &[], &prometheus);
    assert_eq!(
        (code, printed.as_str()),
        (Some(0), ""),
        "promtool check metrics on:\n{prometheus}"
    );
    // promtool has no OpenMetrics parser yet (prometheus/prometheus#8932): it reads OpenMetrics'
    // `x` counter family of `x_total` samples as an undocumented `x_total`, so only that may
    // be said about it, unless this promtool has learnt `--format=openmetrics`.
    let (code, printed) = if promtool_knows_openmetrics(&promtool_path) {
        promtool(&promtool_path, &["--format=openmetrics"], &openmetrics)
    } else {
        promtool(&promtool_path, &[], &openmetrics)
    };
    if code != Some(0) || !printed.is_empty() {
        assert!(
            printed.lines().all(|l| l.ends_with("_total no help text")),
            "promtool finds only the counter naming it cannot read in OpenMetrics: {printed}"
        );
    }
}

fn promtool_knows_openmetrics(promtool: &std::path::Path) -> bool {
    Command::new(promtool)
        .args(["check", "metrics", "--help"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).contains("openmetrics")
                || String::from_utf8_lossy(&o.stderr).contains("openmetrics")
        })
}

//! Prometheus metrics, served at `GET /metrics` in the Prometheus text format 0.0.4, or in
//! OpenMetrics 1.0.0 when the scraper's `Accept` prefers it: requests by route and status,
//! latency, login outcomes, the password-hash queue, stored sessions and API keys, the
//! database size, and mail sent, failed, abandoned and queued. Counters live in memory; gauges are read at scrape time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// How a login ended, for `cloudheed_logins_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Tokens issued.
    Success,
    /// Wrong email or password.
    Invalid,
    /// 429: per-address limit or account lock.
    Throttled,
    /// A second factor was missing or wrong.
    Totp,
    /// Anything else (malformed request, overload, server error).
    Other,
}

/// A text exposition format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4: the default, because it is what `curl` users, older scrapers and
    /// `promtool check metrics` read (OpenMetrics counters look help-less to them).
    Prometheus,
    /// OpenMetrics text 1.0.0, which Prometheus asks for first when it scrapes.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header value (all of its lines joined by `,`) prefers.
    /// OpenMetrics only when a 1.0.0 or 0.0.1 (or unversioned) `application/openmetrics-text`
    /// range is acceptable and ranked at least as high as every range 0.0.4 would satisfy;
    /// anything unknown or malformed falls back to 0.0.4, which every scraper reads.
    pub fn negotiate(accept: &str) -> Format {
        let (mut openmetrics, mut prometheus) = (0.0_f32, 0.0_f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut q, mut version) = (1.0_f32, None);
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    // RFC 9110 weights are 0..=1; anything else makes the range worthless
                    // rather than letting it outrank the rest.
                    "q" => {
                        q = value
                            .parse()
                            .ok()
                            .filter(|q: &f32| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0)
                    }
                    "version" => version = Some(value),
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text"
                    if matches!(version, None | Some("1.0.0" | "0.0.1")) =>
                {
                    openmetrics = openmetrics.max(q);
                }
                "text/plain" if matches!(version, None | Some("0.0.4")) => {
                    prometheus = prometheus.max(q);
                }
                "text/*" | "*/*" => prometheus = prometheus.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= prometheus {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What is read from elsewhere when metrics are scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Requests waiting for a hashing slot.
    pub hash_queue: i64,
    /// Sessions stored.
    pub sessions: i64,
    /// API keys stored.
    pub api_keys: i64,
    /// Users stored.
    pub users: i64,
    /// Size of the database file in bytes.
    pub db_bytes: i64,
    /// (limit, client) pairs the rate limiter remembers.
    pub rate_limit_tracked: i64,
    /// Verified access tokens held.
    pub token_cache_entries: i64,
    /// Messages in the mail outbox.
    pub mail_queued: i64,
}

/// Every metric of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram>,
    logins: Family<OutcomeLabel, Counter>,
    hash_queue: Gauge,
    sessions: Gauge,
    api_keys: Gauge,
    users: Gauge,
    db_bytes: Gauge,
    rate_limit_tracked: Gauge,
    token_cache_entries: Gauge,
    mail_sent: Counter,
    mail_failed: Counter,
    mail_abandoned: Counter,
    mail_queued: Gauge,
    login_unknown_account: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cloudheed");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            // 100 µs to ~3 s: from a JWKS hit to a login at the default scrypt cost.
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        let logins = Family::<OutcomeLabel, Counter>::default();
        let (hash_queue, sessions, api_keys, users, db_bytes) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request",
            latency.clone(),
        );
        registry.register("logins", "Login attempts by outcome", logins.clone());
        registry.register(
            "password_hash_queue",
            "Requests waiting for a password-hashing slot",
            hash_queue.clone(),
        );
        registry.register(
            "sessions",
            "Sessions stored (expired ones until pruned)",
            sessions.clone(),
        );
        registry.register(
            "api_keys",
            "API keys stored (expired ones until pruned)",
            api_keys.clone(),
        );
        registry.register("users", "Accounts", users.clone());
        registry.register(
            "database_size_bytes",
            "Size of the database file",
            db_bytes.clone(),
        );
        let rate_limit_tracked = Gauge::default();
        registry.register(
            "rate_limit_tracked",
            "(limit, client) pairs the rate limiter remembers; bounded by rate_limits.max_tracked_clients",
            rate_limit_tracked.clone(),
        );
        let token_cache_entries = Gauge::default();
        registry.register(
            "token_cache_entries",
            "Access tokens whose signature was already checked; bounded by cache.tokens",
            token_cache_entries.clone(),
        );
        let (mail_sent, mail_failed, mail_abandoned) =
            (Counter::default(), Counter::default(), Counter::default());
        let mail_queued = Gauge::default();
        registry.register(
            "mail_sent",
            "Messages handed to the mail transport",
            mail_sent.clone(),
        );
        registry.register(
            "mail_failed",
            "Mail deliveries that failed (each is retried until email.max_attempts)",
            mail_failed.clone(),
        );
        registry.register(
            "mail_abandoned",
            "Messages dropped after email.max_attempts failed deliveries, or a permanent failure",
            mail_abandoned.clone(),
        );
        registry.register(
            "mail_queued",
            "Messages waiting in the mail outbox",
            mail_queued.clone(),
        );
        let login_unknown_account = Counter::default();
        registry.register(
            "login_failures_unknown_account",
            "Failed logins for emails with no account: counted here, never stored per email",
            login_unknown_account.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            logins,
            hash_queue,
            sessions,
            api_keys,
            users,
            db_bytes,
            rate_limit_tracked,
            token_cache_entries,
            mail_sent,
            mail_failed,
            mail_abandoned,
            mail_queued,
            login_unknown_account,
        }
    }
}

impl Metrics {
    /// Count a served request.
    pub fn request(&self, route: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        self.latency
            .get_or_create(&RouteLabel { route })
            .observe(seconds);
    }

    /// Count a login outcome.
    pub fn login(&self, outcome: LoginOutcome) {
        let outcome = match outcome {
            LoginOutcome::Success => "success",
            LoginOutcome::Invalid => "invalid",
            LoginOutcome::Throttled => "throttled",
            LoginOutcome::Totp => "totp",
            LoginOutcome::Other => "other",
        };
        self.logins.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Count a failed login for an email with no account (the audit log keeps none of them).
    pub fn login_unknown_account(&self) {
        self.login_unknown_account.inc();
    }

    /// Count a message handed to the transport.
    pub fn mail_sent(&self) {
        self.mail_sent.inc();
    }

    /// Count a failed delivery.
    pub fn mail_failed(&self) {
        self.mail_failed.inc();
    }

    /// Count a message given up on.
    pub fn mail_abandoned(&self) {
        self.mail_abandoned.inc();
    }

    /// The OpenMetrics exposition, with gauges set from `now`.
    pub fn render(&self, now: Snapshot) -> String {
        self.render_as(now, Format::OpenMetrics)
    }

    /// The exposition in `format`, with gauges set from `now`.
    pub fn render_as(&self, now: Snapshot, format: Format) -> String {
        self.hash_queue.set(now.hash_queue);
        self.sessions.set(now.sessions);
        self.api_keys.set(now.api_keys);
        self.users.set(now.users);
        self.db_bytes.set(now.db_bytes);
        self.rate_limit_tracked.set(now.rate_limit_tracked);
        self.token_cache_entries.set(now.token_cache_entries);
        self.mail_queued.set(now.mail_queued);
        self.encode(format)
    }

    /// The exposition in `format`, with gauges as the last `render` set them.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.request("login", 200, 0.4);
        m.request("login", 200, 0.3);
        m.login(LoginOutcome::Success);
        let text = m.render(Snapshot {
            sessions: 3,
            ..Snapshot::default()
        });
        assert!(
            text.contains(r#"cloudheed_http_requests_total{route="login",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cloudheed_logins_total{outcome="success"} 1"#),
            "{text}"
        );
        assert!(text.contains("cloudheed_sessions 3"), "{text}");
        assert!(
            text.contains("cloudheed_http_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }

    /// A server with a sample in every family, as a scrape after some traffic sees it.
    fn busy() -> Metrics {
        let m = Metrics::default();
        m.request("login", 200, 0.4);
        m.request("me", 401, 0.000_05);
        m.login(LoginOutcome::Success);
        m.login(LoginOutcome::Invalid);
        m.render(Snapshot {
            hash_queue: 1,
            sessions: 3,
            api_keys: 2,
            users: 1,
            db_bytes: 4096,
            rate_limit_tracked: 7,
            token_cache_entries: 3,
            mail_queued: 1,
        });
        m.mail_sent();
        m.mail_failed();
        m.mail_abandoned();
        m
    }

    /// Families by their declared name: (HELP text, TYPE).
    fn families(text: &str) -> std::collections::HashMap<&str, (Option<&str>, Option<&str>)> {
        let mut out = std::collections::HashMap::new();
        for line in text.lines() {
            let (slot, rest) = if let Some(rest) = line.strip_prefix("# HELP ") {
                (0, rest)
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                (1, rest)
            } else {
                continue;
            };
            let (name, value) = rest.split_once(' ').expect("name and value");
            let entry: &mut (Option<&str>, Option<&str>) = out.entry(name).or_default();
            if slot == 0 {
                entry.0 = Some(value);
            } else {
                entry.1 = Some(value);
            }
        }
        out
    }

    #[test]
    fn prometheus_text_declares_every_sample_under_its_own_name() {
        let text = busy().encode(Format::Prometheus);
        let families = families(&text);
        assert_eq!(families.len(), 15, "{text}");
        for (name, (help, kind)) in &families {
            assert!(
                help.is_some_and(|h| !h.is_empty()),
                "{name} has HELP: {text}"
            );
            let kind = kind.unwrap_or_else(|| panic!("{name} has TYPE: {text}"));
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "{name}: {kind}"
            );
            // 0.0.4 names a counter by its sample, unlike OpenMetrics' `x` family of `x_total`.
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "{name}: {kind}"
            );
        }
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(samples.len() > 8, "{text}");
        for sample in samples {
            let name = sample.split(['{', ' ']).next().unwrap_or_default();
            let family = families.get(name).map(|f| (name, f)).or_else(|| {
                ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    families
                        .get_key_value(base)
                        .filter(|(_, f)| f.1 == Some("histogram"))
                        .map(|(k, f)| (*k, f))
                })
            });
            assert!(
                family.is_some(),
                "{sample} belongs to a declared family:\n{text}"
            );
        }
        assert!(
            text.lines()
                .filter(|l| l.starts_with('#'))
                .all(|l| l.starts_with("# HELP ") || l.starts_with("# TYPE ")),
            "no # EOF or # UNIT: {text}"
        );
        assert!(!text.contains("_created"), "{text}");
        assert!(
            text.contains(r#"cloudheed_logins_total{outcome="invalid"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("cloudheed_database_size_bytes 4096"),
            "{text}"
        );
        assert!(
            text.contains(r#"cloudheed_http_request_duration_seconds_count{route="me"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn openmetrics_names_counter_families_without_the_suffix_and_ends_with_eof() {
        let m = busy();
        let text = m.encode(Format::OpenMetrics);
        let families = families(&text);
        assert_eq!(families.len(), 15, "{text}");
        assert!(
            families
                .values()
                .all(|(help, kind)| help.is_some_and(|h| !h.is_empty()) && kind.is_some()),
            "{text}"
        );
        assert_eq!(
            families.get("cloudheed_logins").and_then(|f| f.1),
            Some("counter"),
            "{text}"
        );
        assert!(
            text.contains(r#"cloudheed_logins_total{outcome="success"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(
            text,
            m.render(Snapshot {
                hash_queue: 1,
                sessions: 3,
                api_keys: 2,
                users: 1,
                db_bytes: 4096,
                rate_limit_tracked: 7,
                token_cache_entries: 3,
                mail_queued: 1,
            })
        );
    }

    #[test]
    fn negotiation_prefers_openmetrics_only_when_asked() {
        use Format::{OpenMetrics, Prometheus};
        for (accept, want) in [
            ("", Prometheus),
            ("*/*", Prometheus),
            ("text/plain", Prometheus),
            ("text/plain; version=0.0.4", Prometheus),
            ("application/json", Prometheus),
            ("garbage;;,=,", Prometheus),
            ("application/openmetrics-text", OpenMetrics),
            (
                "Application/OpenMetrics-Text; Version=\"1.0.0\"",
                OpenMetrics,
            ),
            ("application/openmetrics-text; version=0.0.1", OpenMetrics),
            ("application/openmetrics-text; version=2.0.0", Prometheus),
            ("application/openmetrics-text; q=0", Prometheus),
            ("application/openmetrics-text; q=abc", Prometheus),
            ("application/openmetrics-text; q=7", Prometheus),
            ("application/openmetrics-text;q=0.5, text/plain", Prometheus),
            (
                "text/plain;q=0.5, application/openmetrics-text",
                OpenMetrics,
            ),
            ("application/openmetrics-text, */*", OpenMetrics),
            // Prometheus 2.x, default scrape.
            (
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                OpenMetrics,
            ),
            // Prometheus 3.x, default scrape_protocols.
            (
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
                 application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;\
                 escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
                OpenMetrics,
            ),
            // Prometheus with `scrape_protocols: [PrometheusText0.0.4]`.
            ("text/plain;version=0.0.4;q=0.5,*/*;q=0.4", Prometheus),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept}");
        }
        assert_eq!(
            Format::Prometheus.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }
}

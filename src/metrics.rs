//! Prometheus metrics, served at `GET /metrics` in the OpenMetrics text format: requests by
//! route and status, latency, login outcomes, the password-hash queue, stored sessions and API
//! keys, and the database size. Counters live in memory; gauges are read at scrape time.

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

    /// The text exposition, with gauges set from `now`.
    pub fn render(&self, now: Snapshot) -> String {
        self.hash_queue.set(now.hash_queue);
        self.sessions.set(now.sessions);
        self.api_keys.set(now.api_keys);
        self.users.set(now.users);
        self.db_bytes.set(now.db_bytes);
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
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
}

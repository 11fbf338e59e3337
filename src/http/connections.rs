//! Who may hold a connection: at most `limits.max_connections_per_address` per client network
//! (trusted proxies exempt: every client behind them shares their address), and each connection
//! only for `max_requests_per_connection` requests or `max_connection_age`, so that no client
//! can sit on slots for ever. Refusals are written straight to the socket, before any request is
//! read, and the connection closed: a quick answer instead of silence in the backlog.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use crate::config::Config;
use crate::domain::net::{client_network, Cidr};
use crate::error::Error;

use super::response;

/// Open connections per client network.
#[derive(Debug)]
pub struct PerAddress {
    cap: usize,
    ipv6_prefix: u8,
    trusted: Vec<Cidr>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection slot of one client network, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<PerAddress>,
    network: Option<IpAddr>,
}

impl PerAddress {
    /// As configured.
    pub fn new(config: &Config) -> Arc<Self> {
        Arc::new(Self {
            cap: config.limits.max_connections_per_address,
            ipv6_prefix: config.rate_limits.ipv6_prefix,
            trusted: config.rate_limits.trusted_proxies.clone(),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a connection from `peer`, or `None` when its network holds the most allowed.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        if super::client::is_trusted(peer, &self.trusted) {
            return Some(Slot {
                owner: self.clone(),
                network: None,
            });
        }
        let network = client_network(peer, self.ipv6_prefix);
        let mut open = self.lock();
        let n = open.entry(network).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: self.clone(),
            network: Some(network),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(network) = self.network else { return };
        let mut open = self.owner.lock();
        if let Some(n) = open.get_mut(&network) {
            *n -= 1;
            if *n == 0 {
                open.remove(&network);
            }
        }
    }
}

/// How long one connection may keep asking.
#[derive(Debug)]
pub struct Lifetime {
    served: AtomicU64,
    opened: Instant,
    max_requests: u64,
    max_age: Duration,
}

impl Lifetime {
    /// A connection opened now.
    pub fn new(config: &Config) -> Self {
        Self {
            served: AtomicU64::new(0),
            opened: Instant::now(),
            max_requests: config.limits.max_requests_per_connection,
            max_age: config.limits.max_connection_age,
        }
    }

    /// Count one more request; true when the connection should close after answering it.
    pub fn last_request(&self) -> bool {
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        served >= self.max_requests || self.opened.elapsed() >= self.max_age
    }
}

/// The bytes of a complete HTTP/1.1 error response that closes the connection, for refusing one
/// before reading anything from it. Rendered once, by the one error renderer.
pub async fn refusal(err: &Error) -> Vec<u8> {
    let mut resp = response::error(err);
    response::harden(&mut resp, "-");
    let (head, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        head.status.as_u16(),
        head.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::from_toml(extra).expect("config")
    }

    #[test]
    fn each_network_gets_its_cap_and_trusted_proxies_none() {
        let limits = PerAddress::new(&config(
            "[limits]\nmax_connections_per_address = 2\n[rate_limits]\ntrusted_proxies = [\"10.0.0.1\"]",
        ));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let first = limits.admit(a).expect("first");
        let _second = limits.admit(a).expect("second");
        assert!(limits.admit(a).is_none(), "third from one address");
        assert!(
            limits.admit("2001:db8::1".parse().expect("ip")).is_some(),
            "another client"
        );
        drop(first);
        assert!(
            limits.admit(a).is_some(),
            "a closed connection frees its slot"
        );
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let held: Vec<Slot> = (0..50).filter_map(|_| limits.admit(proxy)).collect();
        assert_eq!(held.len(), 50, "trusted proxies are exempt");
        assert!(limits.lock().get(&proxy).is_none(), "and not even counted");
    }

    #[test]
    fn a_connection_closes_after_its_last_request() {
        let life = Lifetime::new(&config("[limits]\nmax_requests_per_connection = 3"));
        assert!(!life.last_request());
        assert!(!life.last_request());
        assert!(life.last_request());
    }

    #[tokio::test]
    async fn a_refusal_is_a_complete_response() {
        let raw = refusal(&Error::Overloaded {
            retry_after: Duration::from_secs(1),
        })
        .await;
        let text = String::from_utf8(raw).expect("utf8");
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("retry-after: 1\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"));
        let (_, body) = text.split_once("\r\n\r\n").expect("head and body");
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["message_code"], "overloaded");
    }
}

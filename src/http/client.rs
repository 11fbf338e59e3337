//! Who is calling: the peer address, or, when the peer is a trusted proxy, the client it names in
//! `X-Forwarded-For`. Addresses come out canonical (IPv4-mapped IPv6 as IPv4), so limits, trust
//! and logs see one client one way.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{self, HeaderMap};

use crate::domain::models::ClientInfo;
use crate::domain::net::{canonical, Cidr};

/// The caller's address and user agent.
pub fn info(headers: &HeaderMap, peer: SocketAddr, trusted: &[Cidr]) -> ClientInfo {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    ClientInfo {
        ip: Some(address(headers, peer.ip(), trusted)),
        user_agent,
    }
}

/// Whether `peer` is one of the trusted proxies.
pub fn is_trusted(peer: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|block| block.contains(peer))
}

/// The right-most `X-Forwarded-For` hop that is not itself a trusted proxy: entries further left
/// were written by the client and prove nothing. From an untrusted peer, the peer.
fn address(headers: &HeaderMap, peer: IpAddr, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>().map(canonical) {
            Ok(ip) if is_trusted(ip, trusted) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn blocks(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| Cidr::parse(s).expect("cidr")).collect()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 203.0.113.9, 10.0.0.2"),
        );
        let trusted = blocks(&["127.0.0.1", "10.0.0.2"]);
        assert_eq!(address(&h, ip("127.0.0.1"), &trusted), ip("203.0.113.9"));
        assert_eq!(
            address(&h, ip("198.51.100.1"), &trusted),
            ip("198.51.100.1"),
            "untrusted peer"
        );
        assert_eq!(
            address(&h, ip("127.0.0.1"), &[]),
            ip("127.0.0.1"),
            "no trusted proxies"
        );
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("junk, 10.0.0.2"),
        );
        assert_eq!(address(&h, ip("127.0.0.1"), &trusted), ip("10.0.0.2"));
        assert_eq!(
            address(&HeaderMap::new(), ip("127.0.0.1"), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn trusted_proxies_may_be_blocks_and_addresses_come_out_canonical() {
        let trusted = blocks(&["10.0.0.0/8", "::1"]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("::ffff:203.0.113.9, 10.1.1.1, 10.2.2.2"),
        );
        assert_eq!(
            address(&h, ip("::ffff:10.9.9.9"), &trusted),
            ip("203.0.113.9"),
            "a mapped peer in a trusted block; every trusted hop skipped; the client unmapped"
        );
        assert_eq!(address(&h, ip("::1"), &trusted), ip("203.0.113.9"));
        assert_eq!(
            address(&HeaderMap::new(), ip("::ffff:192.0.2.1"), &[]),
            ip("192.0.2.1")
        );
    }
}

//! Client addresses as the limits see them: CIDR blocks for trusted proxies, and the network an
//! address stands for (IPv4 /32, IPv6 /64 by default), since one IPv6 subscriber holds a whole
//! /64 and could otherwise rotate through addresses to dodge every per-address limit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block, `203.0.113.0/24` or `2001:db8::/32`; a bare address is its own /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `ADDR` or `ADDR/PREFIX`. Host bits set under the prefix are refused, since
    /// `10.0.0.1/8` usually means a typo rather than `10.0.0.0/8`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let base = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?,
        );
        let max = max_prefix(base);
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a prefix length outside 0..={max}"))?,
        };
        if network(base, prefix) != base {
            return Err(format!(
                "{s:?} has host bits set; did you mean {}/{prefix}?",
                network(base, prefix)
            ));
        }
        Ok(Cidr { base, prefix })
    }

    /// Whether `ip` lies in the block (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.base.is_ipv4() && network(ip, self.prefix) == self.base
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix == max_prefix(self.base) {
            write!(f, "{}", self.base)
        } else {
            write!(f, "{}/{}", self.base, self.prefix)
        }
    }
}

/// `::ffff:192.0.2.1` is `192.0.2.1`: one client, one key, whichever socket family it used.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The network a client address stands for: IPv4 addresses as they are, IPv6 ones cut to
/// `ipv6_prefix` bits.
pub fn client_network(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        v4 @ IpAddr::V4(_) => v4,
        v6 @ IpAddr::V6(_) => network(v6, ipv6_prefix),
    }
}

/// How long a login keeps its client network known to the account lock.
pub const KNOWN_FOR_SECS: i64 = 30 * 86_400;
/// Networks remembered per account; a new one pushes out the one seen longest ago.
pub const KNOWN_NETWORKS: usize = 16;

/// The network the account lock knows a client by: its IPv4 address or its IPv6 /64, whatever
/// the limits' prefix, since a home network is a /64.
pub fn login_network(ip: IpAddr) -> String {
    client_network(ip, 64).to_string()
}

/// Note a completed login from `network`: it becomes (or stays) the newest entry, and the list
/// keeps at most [`KNOWN_NETWORKS`].
pub fn note_login_network(known: &mut Vec<(String, i64)>, network: String, now: i64) {
    known.retain(|(n, _)| *n != network);
    known.push((network, now));
    if known.len() > KNOWN_NETWORKS {
        known.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
        known.truncate(KNOWN_NETWORKS);
    }
}

/// Whether `ip` is a network the account completed a login from in the last 30 days.
pub fn is_known_network(known: &[(String, i64)], ip: IpAddr, now: i64) -> bool {
    let network = login_network(ip);
    known
        .iter()
        .any(|(n, at)| *n == network && now - at < KNOWN_FOR_SECS)
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// `ip` with every bit past `prefix` cleared.
fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn blocks_parse_and_contain() {
        let lan = Cidr::parse("10.0.0.0/8").expect("cidr");
        assert!(lan.contains(ip("10.1.2.3")));
        assert!(lan.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!lan.contains(ip("11.0.0.1")));
        assert!(
            !lan.contains(ip("::a01:203")),
            "IPv4-compatible is not IPv4"
        );
        let one = Cidr::parse("127.0.0.1").expect("address");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("2001:db8::/32").expect("v6");
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0")
            .expect("all")
            .contains(ip("8.8.8.8")));
        assert!(!Cidr::parse("0.0.0.0/0").expect("all").contains(ip("::1")));
        assert_eq!(
            Cidr::parse("::ffff:127.0.0.1").expect("mapped").to_string(),
            "127.0.0.1"
        );
        assert_eq!(lan.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bad_blocks_are_refused_with_a_reason() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.1/8",
            "host",
            "10.0.0.0/x",
            "1.2.3.4/",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(Cidr::parse("10.0.0.1/8")
            .expect_err("host bits")
            .contains("10.0.0.0/8"));
    }

    #[test]
    fn logins_make_a_network_known_for_thirty_days() {
        let mut known = Vec::new();
        note_login_network(&mut known, login_network(ip("2001:db8:1:2::5")), 100);
        assert!(
            is_known_network(&known, ip("2001:db8:1:2:ffff::1"), 100),
            "same /64"
        );
        assert!(!is_known_network(&known, ip("2001:db8:1:3::1"), 100));
        assert!(is_known_network(
            &known,
            ip("2001:db8:1:2::5"),
            100 + KNOWN_FOR_SECS - 1
        ));
        assert!(!is_known_network(
            &known,
            ip("2001:db8:1:2::5"),
            100 + KNOWN_FOR_SECS
        ));
        for i in 0..40_u8 {
            note_login_network(
                &mut known,
                login_network(IpAddr::from([192, 0, 2, i])),
                200 + i64::from(i),
            );
        }
        assert_eq!(known.len(), KNOWN_NETWORKS);
        assert!(
            is_known_network(&known, ip("192.0.2.39"), 300),
            "the newest are kept"
        );
        assert!(!is_known_network(&known, ip("192.0.2.0"), 300));
        note_login_network(&mut known, login_network(ip("192.0.2.39")), 400);
        assert_eq!(known.len(), KNOWN_NETWORKS, "a repeat is not a new entry");
    }

    #[test]
    fn ipv6_clients_are_counted_per_network() {
        assert_eq!(
            client_network(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            client_network(ip("2001:db8:1:2:aaaa::1"), 128),
            ip("2001:db8:1:2:aaaa::1")
        );
        assert_eq!(client_network(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(client_network(ip("192.0.2.7"), 0), ip("192.0.2.7"));
    }
}

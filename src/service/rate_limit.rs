//! Token buckets per client and per account: how often one client (an IPv4 address or an IPv6
//! network) may try to log in, register, present a refused refresh token or guess a password or
//! code, and how many writes one account may cause. Each bucket holds `count` tokens and refills
//! at `count` per `per`, continuously; a request needs a token in every configured window (e.g.
//! 10 a minute and 100 an hour). Answers 429 `rate_limited` with `Retry-After`.
//!
//! Memory is bounded: at most `max_tracked_clients` (limit, client) pairs, the least recently
//! seen forgotten first, in shards so that no one lock serialises every request, and each check
//! is O(1). Forgetting a pair only ever gives that client a full bucket again, which is what an
//! attacker with that many addresses could get anyway. `rate_limits.enabled = false` turns all of
//! it off (benchmarks).

use std::net::IpAddr;
use std::time::Duration;

use crate::clock::UnixTime;
use crate::config::{Rate, RateLimitsConfig};
use crate::domain::net::client_network;
use crate::error::Error;

use crate::bounded::ShardedLru;

/// What is being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Login attempts, per client.
    Login,
    /// Registrations, per client.
    Register,
    /// Refused refresh tokens, per client.
    Refresh,
    /// Password and code guesses, per client, counted as they start.
    Failures,
    /// Durable writes one account causes (2FA setup, API keys, session revoke), per account.
    AccountWrites,
    /// Verification mails one account asks for, per account.
    VerificationMail,
    /// Password-reset mails sent to one account, per account.
    ResetMail,
    /// Password-reset requests, per client.
    ForgotPassword,
}

impl Bucket {
    const ALL: [Bucket; 8] = [
        Bucket::Login,
        Bucket::Register,
        Bucket::Refresh,
        Bucket::Failures,
        Bucket::AccountWrites,
        Bucket::VerificationMail,
        Bucket::ResetMail,
        Bucket::ForgotPassword,
    ];

    /// The limit's name in logs and in the config's `[rate_limits]`.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Login => "login",
            Bucket::Register => "register",
            Bucket::Refresh => "refresh",
            Bucket::Failures => "failures",
            Bucket::AccountWrites => "account_writes",
            Bucket::VerificationMail => "verification_mail",
            Bucket::ResetMail => "reset_mail",
            Bucket::ForgotPassword => "forgot_password",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Client(IpAddr),
    Account(Box<str>),
}

#[derive(Debug, Clone, Copy)]
struct Level {
    tokens: f64,
    at: UnixTime,
}

/// The buckets of every client and account.
#[derive(Debug)]
pub struct RateLimiter {
    enabled: bool,
    ipv6_prefix: u8,
    rates: [Vec<Rate>; Bucket::ALL.len()],
    levels: ShardedLru<(Bucket, Subject), Vec<Level>>,
}

impl RateLimiter {
    /// Buckets as configured.
    pub fn new(cfg: &RateLimitsConfig) -> Self {
        Self {
            enabled: cfg.enabled,
            ipv6_prefix: cfg.ipv6_prefix,
            rates: Bucket::ALL.map(|b| match b {
                Bucket::Login => cfg.login.clone(),
                Bucket::Register => cfg.register.clone(),
                Bucket::Refresh => cfg.refresh.clone(),
                Bucket::Failures => cfg.failures.clone(),
                Bucket::AccountWrites => cfg.account_writes.clone(),
                Bucket::VerificationMail | Bucket::ResetMail => cfg.account_mail.clone(),
                Bucket::ForgotPassword => cfg.forgot_password.clone(),
            }),
            levels: ShardedLru::new(cfg.max_tracked_clients),
        }
    }

    /// Take one token from every window of `bucket` for the client at `ip`, or 429 if any is
    /// empty (and nothing is taken).
    pub fn take(&self, bucket: Bucket, ip: Option<IpAddr>, now: UnixTime) -> Result<(), Error> {
        let Some(ip) = ip else { return Ok(()) };
        let net = client_network(ip, self.ipv6_prefix);
        self.take_from(bucket, Subject::Client(net), now)
            .inspect_err(|_| tracing::info!(limit = bucket.name(), client = %net, "rate limited"))
    }

    /// Take one token from every window of `bucket` for the account `user_id`, or 429.
    pub fn take_for_account(
        &self,
        bucket: Bucket,
        user_id: &str,
        now: UnixTime,
    ) -> Result<(), Error> {
        self.take_from(bucket, Subject::Account(user_id.into()), now)
            .inspect_err(
                |_| tracing::info!(limit = bucket.name(), user_id = %user_id, "rate limited"),
            )
    }

    /// Return a token taken for an attempt that turned out not to count (a right password).
    pub fn give_back(&self, bucket: Bucket, ip: Option<IpAddr>) {
        let (true, Some(ip)) = (self.enabled, ip) else {
            return;
        };
        let key = (
            bucket,
            Subject::Client(client_network(ip, self.ipv6_prefix)),
        );
        let rates = &self.rates[bucket.index()];
        self.levels.with_existing(&key, |levels| {
            for (level, rate) in levels.iter_mut().zip(rates) {
                level.tokens = (level.tokens + 1.0).min(f64::from(rate.count));
            }
        });
    }

    /// How many (limit, client) pairs are remembered now; never above `max_tracked_clients`
    /// (rounded up to a multiple of the shard count).
    pub fn tracked(&self) -> usize {
        self.levels.len()
    }

    fn take_from(&self, bucket: Bucket, subject: Subject, now: UnixTime) -> Result<(), Error> {
        let rates = &self.rates[bucket.index()];
        if !self.enabled || rates.is_empty() {
            return Ok(());
        }
        let make = || {
            rates
                .iter()
                .map(|r| Level {
                    tokens: f64::from(r.count),
                    at: now,
                })
                .collect()
        };
        self.levels.with((bucket, subject), make, |levels| {
            take_levels(levels, rates, now)
        })
    }

    /// The configured windows of `bucket`; none when limits are off.
    pub fn rates(&self, bucket: Bucket) -> &[Rate] {
        if self.enabled {
            &self.rates[bucket.index()]
        } else {
            &[]
        }
    }

    /// The network a client address is limited as.
    pub fn network(&self, ip: IpAddr) -> IpAddr {
        client_network(ip, self.ipv6_prefix)
    }
}

/// Take one token from every window, or 429 with the wait (and nothing taken).
fn take_levels(levels: &mut [Level], rates: &[Rate], now: UnixTime) -> Result<(), Error> {
    let mut wait = 0.0_f64;
    for (level, rate) in levels.iter_mut().zip(rates) {
        refill(level, rate, now);
        if level.tokens < 1.0 {
            wait = wait.max((1.0 - level.tokens) * per_token(rate));
        }
    }
    if wait > 0.0 {
        return Err(Error::RateLimited {
            retry_after: Duration::from_secs(wait.ceil().max(1.0) as u64),
        });
    }
    for level in levels.iter_mut() {
        level.tokens -= 1.0;
    }
    Ok(())
}

/// The same buckets kept as bytes in a store several instances share: each takes a bucket's
/// bytes (none for a fresh one) and gives back the bytes to keep.
pub mod shared {
    use super::{take_levels, Level, Rate, UnixTime};
    use crate::error::Error;

    fn read(rates: &[Rate], bytes: Option<&[u8]>, now: UnixTime) -> Vec<Level> {
        let stored: Vec<Level> = bytes
            .unwrap_or_default()
            .chunks_exact(16)
            .map(|c| {
                let mut tokens = [0u8; 8];
                let mut at = [0u8; 8];
                tokens.copy_from_slice(&c[..8]);
                at.copy_from_slice(&c[8..]);
                Level {
                    tokens: f64::from_be_bytes(tokens),
                    at: i64::from_be_bytes(at),
                }
            })
            .collect();
        if stored.len() == rates.len() {
            stored
        } else {
            rates
                .iter()
                .map(|r| Level {
                    tokens: f64::from(r.count),
                    at: now,
                })
                .collect()
        }
    }

    fn write(levels: &[Level]) -> Vec<u8> {
        levels
            .iter()
            .flat_map(|l| {
                let mut b = l.tokens.to_be_bytes().to_vec();
                b.extend_from_slice(&l.at.to_be_bytes());
                b
            })
            .collect()
    }

    /// `RateLimiter::take` on shared bytes.
    pub fn take(
        rates: &[Rate],
        bytes: Option<&[u8]>,
        now: UnixTime,
    ) -> (Vec<u8>, Result<(), Error>) {
        let mut levels = read(rates, bytes, now);
        let outcome = take_levels(&mut levels, rates, now);
        (write(&levels), outcome)
    }

    /// `RateLimiter::give_back` on shared bytes.
    pub fn give_back(rates: &[Rate], bytes: Option<&[u8]>, now: UnixTime) -> Vec<u8> {
        let mut levels = read(rates, bytes, now);
        for (level, rate) in levels.iter_mut().zip(rates) {
            level.tokens = (level.tokens + 1.0).min(f64::from(rate.count));
        }
        write(&levels)
    }
}

fn per_token(rate: &Rate) -> f64 {
    rate.per.as_secs_f64() / f64::from(rate.count)
}

fn refill(level: &mut Level, rate: &Rate, now: UnixTime) {
    let elapsed = (now - level.at).max(0) as f64;
    level.tokens = (level.tokens + elapsed / per_token(rate)).min(f64::from(rate.count));
    level.at = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(login: &[&str]) -> RateLimiter {
        let mut cfg = crate::config::Config::default().rate_limits;
        cfg.login = login
            .iter()
            .map(|s| Rate::parse(s).expect("rate"))
            .collect();
        RateLimiter::new(&cfg)
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    fn v6(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ipv6"))
    }

    #[test]
    fn a_burst_then_429_with_the_wait_then_refill() {
        let l = limiter(&["3/1m"]);
        for _ in 0..3 {
            assert!(l.take(Bucket::Login, ip(1), 0).is_ok());
        }
        match l.take(Bucket::Login, ip(1), 0) {
            Err(Error::RateLimited { retry_after }) => assert_eq!(retry_after.as_secs(), 20),
            other => panic!("{other:?}"),
        }
        assert!(l.take(Bucket::Login, ip(2), 0).is_ok(), "per address");
        assert!(
            l.take(Bucket::Login, ip(1), 20).is_ok(),
            "one token back after 20 s"
        );
        assert!(l.take(Bucket::Login, ip(1), 20).is_err());
    }

    #[test]
    fn every_window_must_have_room() {
        let l = limiter(&["10/1m", "12/1h"]);
        let mut now = 0;
        let mut allowed = 0;
        for _ in 0..100 {
            if l.take(Bucket::Login, ip(1), now).is_ok() {
                allowed += 1;
            }
            now += 6;
        }
        // 600 s: the minute window alone would allow ~100; the hour window caps it near 12 + 2.
        assert!((12..=15).contains(&allowed), "{allowed}");
    }

    #[test]
    fn a_token_given_back_is_usable_again_and_disabled_allows_everything() {
        let l = limiter(&["1/1m"]);
        assert!(l.take(Bucket::Login, ip(1), 0).is_ok());
        assert!(l.take(Bucket::Login, ip(1), 0).is_err());
        l.give_back(Bucket::Login, ip(1));
        assert!(l.take(Bucket::Login, ip(1), 0).is_ok());
        let mut cfg = crate::config::Config::default().rate_limits;
        cfg.enabled = false;
        let off = RateLimiter::new(&cfg);
        for _ in 0..1000 {
            assert!(off.take(Bucket::Login, ip(1), 0).is_ok());
            assert!(off.take_for_account(Bucket::AccountWrites, "u", 0).is_ok());
        }
    }

    #[test]
    fn ipv6_addresses_of_one_network_share_buckets() {
        let l = limiter(&["2/1m"]);
        assert!(l.take(Bucket::Login, v6("2001:db8:1:2::1"), 0).is_ok());
        assert!(l.take(Bucket::Login, v6("2001:db8:1:2:ffff::9"), 0).is_ok());
        assert!(
            l.take(Bucket::Login, v6("2001:db8:1:2:abcd::7"), 0)
                .is_err(),
            "a third address of the same /64"
        );
        assert!(
            l.take(Bucket::Login, v6("2001:db8:1:3::1"), 0).is_ok(),
            "next /64"
        );
        assert!(l.take(Bucket::Login, v6("::ffff:192.0.2.1"), 0).is_ok());
        assert!(l.take(Bucket::Login, ip(1), 0).is_ok());
        assert!(
            l.take(Bucket::Login, ip(1), 0).is_err(),
            "IPv4-mapped and plain IPv4 are one client"
        );
    }

    #[test]
    fn accounts_have_their_own_buckets() {
        let mut cfg = crate::config::Config::default().rate_limits;
        cfg.account_writes = vec![Rate::parse("2/1m").expect("rate")];
        let l = RateLimiter::new(&cfg);
        assert!(l
            .take_for_account(Bucket::AccountWrites, "user-a", 0)
            .is_ok());
        assert!(l
            .take_for_account(Bucket::AccountWrites, "user-a", 0)
            .is_ok());
        assert!(l
            .take_for_account(Bucket::AccountWrites, "user-a", 0)
            .is_err());
        assert!(l
            .take_for_account(Bucket::AccountWrites, "user-b", 0)
            .is_ok());
    }

    #[test]
    fn memory_stays_bounded_and_recent_clients_are_kept() {
        let mut cfg = crate::config::Config::default().rate_limits;
        cfg.max_tracked_clients = 1_000;
        cfg.login = vec![Rate::parse("1/1h").expect("rate")];
        let l = RateLimiter::new(&cfg);
        // One client keeps coming back while 300k others pass through once each.
        let regular = v6("2001:db8::1");
        assert!(l.take(Bucket::Login, regular, 0).is_ok());
        for i in 0..300_000_u32 {
            let [a, b, c, d] = i.to_be_bytes();
            let _ = l.take(Bucket::Login, Some(IpAddr::from([10, b ^ a, c, d])), 0);
            if i % 50 == 0 {
                assert!(
                    l.take(Bucket::Login, regular, 0).is_err(),
                    "still limited at {i}"
                );
            }
        }
        assert!(l.tracked() <= 1_008, "{}", l.tracked());
        assert!(l.tracked() >= 900, "{}", l.tracked());
    }
}

//! Per-client-address token buckets: how often one address may try to log in, register or
//! refresh, and how many failed credentials it may present. Each bucket holds `count` tokens and
//! refills at `count` per `per`, continuously; a request needs a token in every configured
//! window (e.g. 10 a minute and 100 an hour). Answers 429 `rate_limited` with `Retry-After`,
//! never 401. `rate_limits.enabled = false` turns all of it off (benchmarks).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::UnixTime;
use crate::config::{Rate, RateLimitsConfig};
use crate::error::Error;

/// What is being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Login attempts.
    Login,
    /// Registrations.
    Register,
    /// Refresh-token exchanges.
    Refresh,
    /// Failed credentials of any kind.
    Failures,
}

/// Above this many tracked (bucket, address) pairs, full buckets are forgotten: an address
/// whose buckets are full is indistinguishable from a new one.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Level {
    tokens: f64,
    at: UnixTime,
}

/// The buckets of every address.
#[derive(Debug)]
pub struct RateLimiter {
    enabled: bool,
    rates: HashMap<Bucket, Vec<Rate>>,
    levels: Mutex<HashMap<(Bucket, IpAddr), Vec<Level>>>,
}

impl RateLimiter {
    /// Buckets as configured.
    pub fn new(cfg: &RateLimitsConfig) -> Self {
        let rates = [
            (Bucket::Login, cfg.login.clone()),
            (Bucket::Register, cfg.register.clone()),
            (Bucket::Refresh, cfg.refresh.clone()),
            (Bucket::Failures, cfg.failures.clone()),
        ]
        .into_iter()
        .collect();
        Self {
            enabled: cfg.enabled,
            rates,
            levels: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token from every window of `bucket` for `ip`, or 429 if any is empty.
    pub fn take(&self, bucket: Bucket, ip: Option<IpAddr>, now: UnixTime) -> Result<(), Error> {
        self.with(bucket, ip, now, true)
    }

    /// 429 if any window of `bucket` for `ip` is empty; takes nothing.
    pub fn check(&self, bucket: Bucket, ip: Option<IpAddr>, now: UnixTime) -> Result<(), Error> {
        self.with(bucket, ip, now, false)
    }

    /// Take a token if there is one; used to count events that already happened.
    pub fn record(&self, bucket: Bucket, ip: Option<IpAddr>, now: UnixTime) {
        let _ = self.with(bucket, ip, now, true);
    }

    fn with(
        &self,
        bucket: Bucket,
        ip: Option<IpAddr>,
        now: UnixTime,
        take: bool,
    ) -> Result<(), Error> {
        let (true, Some(ip), Some(rates)) = (self.enabled, ip, self.rates.get(&bucket)) else {
            return Ok(());
        };
        if rates.is_empty() {
            return Ok(());
        }
        let mut all = self.levels.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= MAX_TRACKED {
            let rates = &self.rates;
            all.retain(|(b, _), levels| !is_full(rates.get(b), levels, now));
        }
        let levels = all.entry((bucket, ip)).or_insert_with(|| {
            rates
                .iter()
                .map(|r| Level {
                    tokens: f64::from(r.count),
                    at: now,
                })
                .collect()
        });
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
        if take {
            for level in levels.iter_mut() {
                level.tokens -= 1.0;
            }
        }
        Ok(())
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

fn is_full(rates: Option<&Vec<Rate>>, levels: &[Level], now: UnixTime) -> bool {
    let Some(rates) = rates else { return true };
    levels.iter().zip(rates).all(|(l, r)| {
        let mut l = *l;
        refill(&mut l, r, now);
        l.tokens >= f64::from(r.count)
    })
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
    fn check_takes_nothing_and_disabled_allows_everything() {
        let l = limiter(&["1/1m"]);
        assert!(l.check(Bucket::Login, ip(1), 0).is_ok());
        assert!(l.check(Bucket::Login, ip(1), 0).is_ok());
        l.record(Bucket::Login, ip(1), 0);
        assert!(l.check(Bucket::Login, ip(1), 0).is_err());
        let mut cfg = crate::config::Config::default().rate_limits;
        cfg.enabled = false;
        let off = RateLimiter::new(&cfg);
        for _ in 0..1000 {
            assert!(off.take(Bucket::Login, ip(1), 0).is_ok());
        }
    }
}

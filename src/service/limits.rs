//! Per-client and per-account limits as the whole deployment sees them: with a store several
//! instances share, each bucket is a row every instance updates (guesses, logins,
//! registrations, refused refresh tokens, reset requests, an account's writes and mail, spread
//! over instances, count together); on the embedded store, this process's memory.

use std::net::IpAddr;

use crate::error::Error;
use crate::service::state::AppState;

use super::rate_limit::{self, Bucket};

fn key(state: &AppState, bucket: Bucket, ip: IpAddr) -> String {
    format!("{}:{}", bucket.name(), state.rate_limiter.network(ip))
}

/// Take one token of `bucket` for the client at `ip`, or 429 `rate_limited`.
pub async fn take_client(
    state: &AppState,
    bucket: Bucket,
    ip: Option<IpAddr>,
) -> Result<(), Error> {
    let now = state.now();
    let rates = state.rate_limiter.rates(bucket);
    let (Some(ip), false) = (ip, state.store.is_redb() || rates.is_empty()) else {
        return state.rate_limiter.take(bucket, ip, now);
    };
    let taken = state
        .store
        .update_shared(key(state, bucket, ip), now, |b| {
            rate_limit::shared::take(rates, b, now)
        })
        .await?;
    match taken {
        Some(Err(e)) => {
            tracing::info!(limit = bucket.name(), client = %state.rate_limiter.network(ip), "rate limited");
            Err(e)
        }
        _ => Ok(()),
    }
}

/// Take one token of `bucket` for the account `user_id` (writes and mail it causes), or 429.
pub async fn take_account(state: &AppState, bucket: Bucket, user_id: &str) -> Result<(), Error> {
    let now = state.now();
    let rates = state.rate_limiter.rates(bucket);
    if state.store.is_redb() || rates.is_empty() {
        return state.rate_limiter.take_for_account(bucket, user_id, now);
    }
    let key = format!("{}:user:{user_id}", bucket.name());
    let taken = state
        .store
        .update_shared(key, now, |b| rate_limit::shared::take(rates, b, now))
        .await?;
    match taken {
        Some(Err(e)) => {
            tracing::info!(limit = bucket.name(), user_id = %user_id, "rate limited");
            Err(e)
        }
        _ => Ok(()),
    }
}

/// Return a token of `bucket` taken for an attempt that turned out not to count.
pub fn give_back_client(state: &AppState, bucket: Bucket, ip: Option<IpAddr>) {
    let rates = state.rate_limiter.rates(bucket).to_vec();
    match ip {
        Some(ip) if !state.store.is_redb() && !rates.is_empty() => {
            let now = state.now();
            update_shared_later(state, key(state, bucket, ip), move |b| {
                rate_limit::shared::give_back(&rates, b, now)
            });
        }
        _ => state.rate_limiter.give_back(bucket, ip),
    }
}

/// Update shared limit state off the request: a count given back need not hold up the answer.
pub fn update_shared_later(
    state: &AppState,
    key: String,
    f: impl FnOnce(Option<&[u8]>) -> Vec<u8> + Send + 'static,
) {
    if state.store.is_redb() {
        return;
    }
    let (store, now) = (state.store.clone(), state.now());
    tokio::spawn(tracing::Instrument::in_current_span(async move {
        if let Err(e) = store.update_shared(key, now, |b| (f(b), ())).await {
            tracing::error!(error = %e, "could not update a shared limit");
        }
    }));
}

//! Limits and the account lock as the whole deployment sees them: with a store several
//! instances share, each bucket and each account's run of failed guesses is a row every instance
//! updates (guesses, logins, registrations, refused refresh tokens, reset requests, an account's
//! writes and mail, spread over instances, count together); on the embedded store, this
//! process's memory. The one place that decides which.

use std::net::IpAddr;

use crate::error::Error;
use crate::service::state::AppState;

use super::lockout;
use super::rate_limit::{self, Bucket};

fn lock_key(user_id: &str) -> String {
    format!("lock:{user_id}")
}

/// Count an attempt against the account's lock (see `lockout`): 429 while locked, unless from a
/// `known` network; `Ok(true)` when this attempt is the one that locks.
pub async fn begin_attempt(
    state: &AppState,
    user_id: &str,
    known: bool,
) -> Result<Result<bool, Error>, Error> {
    let now = state.now();
    if state.store.is_redb() {
        return Ok(state.account_lock.begin(user_id, now, known));
    }
    let begun = state
        .store
        .update_shared(lock_key(user_id), now, |b| {
            lockout::shared::begin(b, user_id, now, known)
        })
        .await?;
    Ok(begun.unwrap_or(Ok(false)))
}

/// A success ends the account's run of failures.
pub fn end_run(state: &AppState, user_id: &str) {
    if state.store.is_redb() {
        state.account_lock.succeed(user_id);
    } else {
        update_shared_later(state, lock_key(user_id), |_| Vec::new());
    }
}

/// Take back an attempt that was no failure.
pub fn undo_attempt(state: &AppState, user_id: &str) {
    if state.store.is_redb() {
        state.account_lock.undo(user_id);
    } else {
        update_shared_later(state, lock_key(user_id), lockout::shared::undo);
    }
}

/// Whether the account is locked now, as the guesses of every instance left it.
pub async fn is_locked(state: &AppState, user_id: &str) -> Result<bool, Error> {
    if state.store.is_redb() {
        return Ok(state.account_lock.is_locked(user_id, state.now()));
    }
    let bytes = state.store.read_shared(lock_key(user_id)).await?;
    Ok(lockout::shared::is_locked(bytes.as_deref(), state.now()))
}

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

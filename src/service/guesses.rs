//! Every check of a password or a second-factor code, wherever it happens (login, 2FA setup,
//! verify and disable), goes through here: it is counted when it *starts*, against the client's
//! failure limit and the account's lock, so concurrent guesses cannot slip past either while
//! earlier ones are still hashing. A success takes the count back.

use std::net::IpAddr;

use crate::domain::account::Account;
use crate::domain::audit::{Event, EventKind};
use crate::domain::net::is_known_network;
use crate::error::Error;
use crate::service::state::AppState;

use super::limits;
use super::rate_limit::Bucket;

/// A guess in progress. Dropping it without a verdict leaves it counted as a failure, which is
/// what a client that went away mid-check gets.
#[derive(Debug)]
#[must_use = "say how the guess ended, or it stays counted as a failure"]
pub struct Guess<'a> {
    state: &'a AppState,
    user_id: Option<String>,
    ip: Option<IpAddr>,
    /// This guess, if wrong, is the one that locks the account.
    locks: bool,
    /// Who records that lock: the login records it with its failure; elsewhere `failed` does.
    lock_recorded_by_caller: bool,
}

/// Start a login's guess of `user`'s password or code (`None`: an unknown account, counted per
/// client only). 429 when the client or the account is out of attempts; the account's lock
/// does not refuse a network the account logged in from in the last 30 days, so whoever knows
/// an email cannot keep its owner out.
pub async fn begin_login<'a>(
    state: &'a AppState,
    user: Option<&Account>,
    ip: Option<IpAddr>,
) -> Result<Guess<'a>, Error> {
    start(state, user, ip, true).await
}

/// Start a guess made inside a session (2FA setup, verify, disable). The lock refuses every
/// network here: a stolen session may well be used from its victim's.
pub async fn begin<'a>(
    state: &'a AppState,
    user: &Account,
    ip: Option<IpAddr>,
) -> Result<Guess<'a>, Error> {
    start(state, Some(user), ip, false).await
}

async fn start<'a>(
    state: &'a AppState,
    user: Option<&Account>,
    ip: Option<IpAddr>,
    known_networks_pass: bool,
) -> Result<Guess<'a>, Error> {
    let now = state.now();
    limits::take_client(state, Bucket::Failures, ip).await?;
    let mut locks = false;
    if let Some(user) = user {
        let known = known_networks_pass
            && ip.is_some_and(|ip| is_known_network(&user.login_networks, ip, now));
        match limits::begin_attempt(state, &user.id, known).await? {
            Ok(l) => locks = l,
            Err(e) => {
                limits::give_back_client(state, Bucket::Failures, ip);
                return Err(e);
            }
        }
    }
    Ok(Guess {
        state,
        user_id: user.map(|u| u.id.clone()),
        ip,
        locks,
        lock_recorded_by_caller: known_networks_pass,
    })
}

impl Guess<'_> {
    /// It was right: the account's run of failures ends and the client's attempt is returned.
    pub fn succeeded(self) {
        if let Some(id) = &self.user_id {
            limits::end_run(self.state, id);
        }
        limits::give_back_client(self.state, Bucket::Failures, self.ip);
    }

    /// A right password still waiting for its code: not a failure, but not a success either.
    pub fn pending(self) {
        if let Some(id) = &self.user_id {
            limits::undo_attempt(self.state, id);
        }
        limits::give_back_client(self.state, Bucket::Failures, self.ip);
    }

    /// It was wrong; it stays counted. If it locked the account, that is recorded (off the
    /// request: the lock lives in memory, and the answer need not wait for its record).
    pub fn failed(self) {
        if let (true, false, Some(user_id)) =
            (self.locks, self.lock_recorded_by_caller, &self.user_id)
        {
            let event = Event::by_system(EventKind::AccountLocked, self.state.now()).user(user_id);
            let event = match self.ip {
                Some(ip) => Event {
                    ip: Some(ip.to_string()),
                    ..event
                },
                None => event,
            };
            let store = self.state.store.clone();
            tokio::spawn(tracing::Instrument::in_current_span(async move {
                if let Err(e) = store.record_events(vec![event]).await {
                    tracing::error!(error = %e, "could not record an account lock");
                }
            }));
        }
    }

    /// Whether this guess, if wrong, locks the account.
    pub fn locks(&self) -> bool {
        self.locks
    }

    /// Settle the guess by the outcome of the attempt it started: success takes the count back,
    /// `totp_required` or `email_not_verified` (a right password) is no failure, anything else
    /// is.
    pub fn settle<T>(self, outcome: Result<T, Error>) -> Result<T, Error> {
        match &outcome {
            Ok(_) => self.succeeded(),
            // A right password that may not log in yet is no failed guess either.
            Err(Error::TotpRequired | Error::EmailNotVerified) => self.pending(),
            Err(_) => self.failed(),
        }
        outcome
    }
}

/// The account `user_id`, once `password` proved to be its own: a guess under the account lock
/// and the client's limits like any other; a wrong one is `invalid_password`.
pub async fn confirm_password(
    state: &AppState,
    user_id: &str,
    password: crate::domain::password::Password,
    ip: Option<IpAddr>,
) -> Result<Account, Error> {
    let account = state
        .store
        .user_by_id(user_id.to_string())
        .await?
        .ok_or(Error::Unauthorized)?;
    let guess = begin(state, &account, ip).await?;
    let verified = state
        .hasher
        .verify(password, Some(account.password_hash.clone()))
        .await?;
    if !verified.ok {
        guess.failed();
        tracing::info!(user_id = %account.id, client = ip.map(tracing::field::display), "wrong password confirming a change");
        return Err(Error::InvalidPassword);
    }
    guess.succeeded();
    Ok(account)
}

//! Accounts: register, login, and the profile behind `/me`.

use crate::crypto::random;
use crate::domain::account::Account;
use crate::domain::account::SecondFactorUse;
use crate::domain::audit::{Event, EventKind, LoginFailure};
use crate::domain::models::{ClientInfo, User};
use crate::domain::net::login_network;
use crate::domain::password::Password;
use crate::domain::types::{Company, DisplayName, Email};
use crate::error::Error;
use crate::secret::Secret;
use crate::service::state::AppState;
use crate::store::{CreateOutcome, NewSession, NewUser, StartOutcome};

use super::guesses;
use super::rate_limit::Bucket;
use super::tokens::{access_token, new_refresh_token, TokenPair};
use super::two_factor;

/// A validated registration.
#[derive(Debug)]
pub struct Registration {
    /// Address.
    pub email: Email,
    /// Password that passed the policy.
    pub password: Password,
    /// Name.
    pub name: DisplayName,
    /// Company.
    pub company: Company,
}

/// Create an account and its first session.
pub async fn register(
    state: &AppState,
    reg: Registration,
    client: ClientInfo,
) -> Result<(TokenPair, User), Error> {
    super::limits::take_client(state, Bucket::Register, client.ip).await?;
    let email_key = reg.email.key();
    // Spare the hash for a known email; `create_account` still decides under its transaction.
    if state.store.email_taken(email_key.clone()).await? {
        return Err(Error::EmailTaken);
    }
    let password_hash = state.hasher.hash(reg.password).await?;
    let now = state.now();
    let user = NewUser {
        id: random::id("user-"),
        email: reg.email.as_str().to_string(),
        email_key,
        name: reg.name.as_str().to_string(),
        company: reg.company.into_inner(),
        plan: state.config.accounts.default_plan.clone(),
        password_hash,
        created_at: now,
    };
    let profile = User {
        id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
        company: user.company.clone(),
        plan: user.plan.clone(),
        two_factor_enabled: false,
        email_verified_at: None,
        created_at: now,
    };
    let client_ip = client.ip;
    let event = Event::by_user(EventKind::Register, now, &client)
        .user(&user.id)
        .detail("email", user.email.as_str());
    let (session, refresh_token) = new_session(state, &user.id, client);
    let (session_id, auth_time) = (session.id.clone(), session.now);
    let event = event.session(&session_id);
    match state
        .store
        .create_account(user, session, vec![event])
        .await?
    {
        CreateOutcome::EmailTaken => Err(Error::EmailTaken),
        CreateOutcome::Created => {
            tracing::info!(user_id = %profile.id, session_id = %session_id, client = client_ip.map(tracing::field::display), "account registered");
            if state.config.email.verify_on_register {
                // The account exists either way; a mail that cannot be queued is asked for again.
                if let Err(e) = super::email::send_verification(state, &profile).await {
                    tracing::error!(user_id = %profile.id, error = %e, "could not queue the verification mail");
                }
            }
            let pair = TokenPair {
                access_token: access_token(state, &profile.id, &session_id, auth_time),
                refresh_token,
            };
            Ok((pair, profile))
        }
    }
}

/// Check an email and password and open a session. Every failure is the same
/// `invalid_credentials`, and an unknown email spends one hash like a wrong password.
pub async fn login(
    state: &AppState,
    email: &str,
    password: Password,
    totp_code: Option<Secret>,
    client: ClientInfo,
) -> Result<(TokenPair, User), Error> {
    super::limits::take_client(state, Bucket::Login, client.ip).await?;
    if !password.within_max_length() {
        return Err(Error::InvalidCredentials);
    }
    let record = match Email::parse(email) {
        Ok(email) => state.store.user_by_email(email.key()).await?,
        Err(_) => None,
    };
    // Counted from its start, per client and per account; a locked account answers 429
    // whatever the password, so the lock reveals nothing about it.
    let guess = match guesses::begin_login(state, record.as_ref(), client.ip).await {
        Ok(g) => g,
        Err(e) => {
            if let Some(r) = &record {
                if super::limits::is_locked(state, &r.id)
                    .await
                    .unwrap_or(false)
                {
                    let reason = LoginFailure::Locked;
                    super::audit::login_failed(state, r, reason, &client, false).await;
                }
            }
            return Err(e);
        }
    };
    let locks = guess.locks();
    let outcome = check_and_open(state, record.clone(), password, totp_code, client.clone()).await;
    let failure = outcome.as_ref().err().and_then(super::audit::login_failure);
    let outcome = guess.settle(outcome);
    match (&record, failure) {
        (Some(r), Some(reason)) => {
            let locked_now = locks && reason.counts_as_wrong_guess();
            super::audit::login_failed(state, r, reason, &client, locked_now).await;
        }
        (None, _) if outcome.is_err() => state.metrics.login_unknown_account(),
        _ => {}
    }
    outcome
}

/// The password, then the second factor, then a session opened in one transaction that
/// re-checks what the account may have changed meanwhile.
async fn check_and_open(
    state: &AppState,
    record: Option<Account>,
    password: Password,
    totp_code: Option<Secret>,
    client: ClientInfo,
) -> Result<(TokenPair, User), Error> {
    let (record, rehash) = check_password(state, record, password, &client).await?;
    let second_factor = if record.two_factor.enabled {
        Some(second_factor(state, &record, totp_code, &client).await?)
    } else {
        None
    };
    let (session, refresh_token) = new_session(state, &record.id, client.clone());
    let (session_id, auth_time) = (session.id.clone(), session.now);
    let event = Event::by_user(EventKind::LoginSucceeded, session.now, &client)
        .user(&record.id)
        .session(&session_id);
    match state
        .store
        .start_session(session, rehash, second_factor, event)
        .await?
    {
        StartOutcome::Started => {}
        StartOutcome::SecondFactorSpent => return Err(Error::InvalidTotpCode),
        StartOutcome::Disabled => return Err(Error::AccountDisabled),
        StartOutcome::TotpRequired => return Err(Error::TotpRequired),
    }
    tracing::info!(user_id = %record.id, session_id = %session_id, client = client.ip.map(tracing::field::display), "login succeeded");
    let pair = TokenPair {
        access_token: access_token(state, &record.id, &session_id, auth_time),
        refresh_token,
    };
    Ok((pair, User::from(&record)))
}

/// The account, if the password is its own and it is enabled, and the password re-hashed when
/// the configured cost changed. An unknown email spends one hash like a wrong password.
async fn check_password(
    state: &AppState,
    record: Option<Account>,
    password: Password,
    client: &ClientInfo,
) -> Result<(Account, Option<Secret>), Error> {
    let stored = record.as_ref().map(|r| r.password_hash.clone());
    let verified = state.hasher.verify(password.clone(), stored).await?;
    let client_ip = client.ip.map(tracing::field::display);
    let record = match record {
        Some(record) if verified.ok => record,
        other => {
            let user_id = other
                .as_ref()
                .map(|r| tracing::field::display(r.id.clone()));
            tracing::info!(
                user_id,
                client = client_ip,
                reason = "invalid_credentials",
                "login failed"
            );
            return Err(Error::InvalidCredentials);
        }
    };
    if record.disabled {
        tracing::info!(user_id = %record.id, client = client_ip, reason = "account_disabled", "login failed");
        return Err(Error::AccountDisabled);
    }
    if state.config.accounts.require_verified_email && record.email_verified_at.is_none() {
        tracing::info!(user_id = %record.id, client = client_ip, reason = "email_not_verified", "login refused");
        return Err(Error::EmailNotVerified);
    }
    let rehash = if verified.needs_rehash {
        Some(state.hasher.hash(password).await?)
    } else {
        None
    };
    Ok((record, rehash))
}

/// The second step of a login with two-factor authentication on, after a right password: no
/// code is `totp_required`; a wrong one is `invalid_totp_code` (the attempt stays counted).
async fn second_factor(
    state: &AppState,
    record: &Account,
    code: Option<Secret>,
    client: &ClientInfo,
) -> Result<SecondFactorUse, Error> {
    let Some(code) = code.filter(|c| !c.expose().is_empty()) else {
        return Err(Error::TotpRequired);
    };
    match two_factor::check_code(state, record, code.expose()).await? {
        Some(used) => Ok(used),
        None => {
            tracing::info!(user_id = %record.id, client = client.ip.map(tracing::field::display), reason = "invalid_totp_code", "login failed");
            Err(Error::InvalidTotpCode)
        }
    }
}

fn new_session(state: &AppState, user_id: &str, client: ClientInfo) -> (NewSession, Secret) {
    let now = state.now();
    let ttl = crate::clock::secs(state.config.tokens.refresh_ttl);
    let (token, hash) = new_refresh_token();
    let session = NewSession {
        id: random::id("ses-"),
        user_id: user_id.to_string(),
        now,
        expires_at: now + ttl,
        user_agent: client.user_agent,
        ip: client.ip.map(|ip| ip.to_string()),
        keep_at_most: state.config.tokens.max_sessions_per_user,
        network: client.ip.map(login_network),
        refresh_hash: hash,
    };
    (session, token)
}

//! Accounts: register, login, and the profile behind `/me`.

use crate::crypto::random;
use crate::domain::models::{ClientInfo, User};
use crate::domain::password::Password;
use crate::domain::types::{Company, DisplayName, Email};
use crate::error::Error;
use crate::state::AppState;
use crate::store::{CreateOutcome, NewSession, NewUser};

use super::tokens::{access_token, new_refresh_token, TokenPair};

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
    let (session, refresh_token) = new_session(state, &user.id, client);
    let (session_id, auth_time) = (session.id.clone(), session.now);
    match state.store.create_account(user, session).await? {
        CreateOutcome::EmailTaken => Err(Error::EmailTaken),
        CreateOutcome::Created => {
            tracing::info!(user_id = %profile.id, "account registered");
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
    client: ClientInfo,
) -> Result<(TokenPair, User), Error> {
    if !password.within_max_length() {
        return Err(Error::InvalidCredentials);
    }
    let record = match Email::parse(email) {
        Ok(email) => state.store.user_by_email(email.key()).await?,
        Err(_) => None,
    };
    let verified = state
        .hasher
        .verify(
            password.clone(),
            record.as_ref().map(|r| r.password_hash.clone()),
        )
        .await?;
    let Some(record) = record.filter(|_| verified.ok) else {
        tracing::info!("login failed: invalid credentials");
        return Err(Error::InvalidCredentials);
    };
    let rehash = if verified.needs_rehash {
        Some(state.hasher.hash(password).await?)
    } else {
        None
    };
    let (session, refresh_token) = new_session(state, &record.id, client);
    let (session_id, auth_time) = (session.id.clone(), session.now);
    state.store.start_session(session, rehash).await?;
    tracing::info!(user_id = %record.id, "login succeeded");
    let pair = TokenPair {
        access_token: access_token(state, &record.id, &session_id, auth_time),
        refresh_token,
    };
    Ok((pair, User::from(&record)))
}

fn new_session(
    state: &AppState,
    user_id: &str,
    client: ClientInfo,
) -> (NewSession, crate::secret::Secret) {
    let now = state.now();
    let ttl = i64::try_from(state.config.tokens.refresh_ttl.as_secs()).unwrap_or(i64::MAX / 4);
    let (token, hash) = new_refresh_token();
    let session = NewSession {
        id: random::id("ses-"),
        user_id: user_id.to_string(),
        now,
        expires_at: now + ttl,
        user_agent: client.user_agent,
        ip: client.ip.map(|ip| ip.to_string()),
        refresh_hash: hash,
    };
    (session, token)
}

//! The caller's sessions: list, end one, log out.

use crate::domain::models::{Principal, Session};
use crate::error::Error;
use crate::state::AppState;

use super::rate_limit::Bucket;

fn session_of(who: &Principal) -> Result<&str, Error> {
    who.session_id().ok_or(Error::SessionRequired)
}

/// End the caller's current session: its refresh token dies and its access tokens are refused.
pub async fn logout(state: &AppState, who: &Principal) -> Result<(), Error> {
    let session_id = session_of(who)?;
    state
        .store
        .revoke_session(who.user.id.clone(), session_id.to_string())
        .await?;
    tracing::info!(user_id = %who.user.id, session_id = %session_id, "logged out");
    Ok(())
}

/// The caller's live sessions, newest first.
pub async fn list(state: &AppState, who: &Principal) -> Result<Vec<Session>, Error> {
    session_of(who)?;
    Ok(state
        .store
        .list_sessions(who.user.id.clone(), state.now())
        .await?)
}

/// End one of the caller's sessions; another user's or an unknown id is `NotFound`.
pub async fn revoke(state: &AppState, who: &Principal, session_id: &str) -> Result<(), Error> {
    let current = session_of(who)?;
    // Each revoke is a durable write; one session must not flood the database.
    state
        .limits
        .take_for_account(Bucket::AccountWrites, &who.user.id, state.now())?;
    if state
        .store
        .revoke_session(who.user.id.clone(), session_id.to_string())
        .await?
    {
        tracing::info!(user_id = %who.user.id, session_id = %current, revoked = %session_id, "session revoked");
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

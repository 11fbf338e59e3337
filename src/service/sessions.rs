//! The caller's sessions: list, end one, log out.

use crate::domain::models::{Principal, Session};
use crate::error::Error;
use crate::state::AppState;

fn session_of(who: &Principal) -> Result<&str, Error> {
    who.session_id().ok_or(Error::SessionRequired)
}

/// End the caller's current session: its refresh token dies and its access tokens are refused.
pub async fn logout(state: &AppState, who: &Principal) -> Result<(), Error> {
    state
        .store
        .revoke_session(who.user.id.clone(), session_of(who)?.to_string())
        .await?;
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
    session_of(who)?;
    if state
        .store
        .revoke_session(who.user.id.clone(), session_id.to_string())
        .await?
    {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

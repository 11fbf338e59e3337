//! The caller's sessions: list, end one, log out.

use crate::domain::audit::EventKind;
use crate::domain::models::{ClientInfo, Session, SessionCaller};
use crate::error::Error;
use crate::service::state::AppState;

use super::audit;
use super::rate_limit::Bucket;

/// End the caller's current session: its refresh token dies and its access tokens are refused.
pub async fn logout(
    state: &AppState,
    who: &SessionCaller,
    client: &ClientInfo,
) -> Result<(), Error> {
    let session_id = &who.session_id;
    let event = audit::in_session(state, EventKind::Logout, who, client);
    state
        .store
        .revoke_session(who.user.id.clone(), session_id.to_string(), event)
        .await?;
    tracing::info!(user_id = %who.user.id, session_id = %session_id, "logged out");
    Ok(())
}

/// The caller's live sessions, newest first.
pub async fn list(state: &AppState, who: &SessionCaller) -> Result<Vec<Session>, Error> {
    Ok(state
        .store
        .list_sessions(who.user.id.clone(), state.now())
        .await?)
}

/// End one of the caller's sessions; another user's or an unknown id is `NotFound`.
pub async fn revoke(
    state: &AppState,
    who: &SessionCaller,
    session_id: &str,
    client: &ClientInfo,
) -> Result<(), Error> {
    let current = &who.session_id;
    // Each revoke is a durable write; one session must not flood the database.
    super::limits::take_account(state, Bucket::AccountWrites, &who.user.id).await?;
    let event = audit::in_session(state, EventKind::SessionRevoked, who, client)
        .detail("revoked_session", session_id);
    if state
        .store
        .revoke_session(who.user.id.clone(), session_id.to_string(), event)
        .await?
    {
        tracing::info!(user_id = %who.user.id, session_id = %current, revoked = %session_id, "session revoked");
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

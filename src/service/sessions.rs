//! Bearer authentication and the caller's sessions: who is calling, list, end one, log out.

use crate::crypto::jwt;
use crate::domain::models::{Principal, Session, User};
use crate::error::Error;
use crate::state::AppState;

/// Turn an access token into the caller: a good signature from one of our keys, our issuer, not
/// expired, and a session that still exists for that user. One signature check and one read.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, Error> {
    let now = state.now();
    let claims =
        jwt::verify(token, &state.keys, &state.config.tokens.issuer, now).map_err(|e| {
            tracing::debug!(reason = ?e, "access token refused");
            Error::Unauthorized
        })?;
    let Some((session, user)) = state.store.session_with_user(claims.sid, now).await? else {
        return Err(Error::Unauthorized);
    };
    if session.user_id != claims.sub {
        return Err(Error::Unauthorized);
    }
    Ok(Principal {
        user: User::from(&user),
        session_id: session.id,
    })
}

/// End the caller's current session: its refresh token dies and its access tokens are refused.
pub async fn logout(state: &AppState, who: &Principal) -> Result<(), Error> {
    state
        .store
        .revoke_session(who.user.id.clone(), who.session_id.clone())
        .await?;
    Ok(())
}

/// The caller's live sessions, newest first.
pub async fn list(state: &AppState, who: &Principal) -> Result<Vec<Session>, Error> {
    Ok(state
        .store
        .list_sessions(who.user.id.clone(), state.now())
        .await?)
}

/// End one of the caller's sessions; another user's or an unknown id is `NotFound`.
pub async fn revoke(state: &AppState, who: &Principal, session_id: &str) -> Result<(), Error> {
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

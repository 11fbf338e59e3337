//! Who is calling: a bearer access token of a live session, or an API key. The hottest path of
//! every deployment, so each kind costs one cheap check and one read, and never a write.

use crate::crypto::jwt::JwtError;
use crate::crypto::{api_key, random};
use crate::domain::models::{Credential, Principal, User};
use crate::error::Error;
use crate::service::state::AppState;

/// Authenticate a bearer credential. Keys are told apart by the configured prefix, which no
/// JWT (base64url of `{"`) can start with.
pub async fn authenticate(state: &AppState, bearer: &str) -> Result<Principal, Error> {
    if bearer.starts_with(&state.config.api_keys.prefix) {
        authenticate_key(state, bearer).await
    } else {
        authenticate_token(state, bearer).await
    }
}

/// An access token: a good signature from one of our keys (checked once per token, then
/// remembered), our issuer, not expired, and a session that still exists for that user — read
/// on every request, so a logout, a revoke or a disable holds on the very next one.
async fn authenticate_token(state: &AppState, token: &str) -> Result<Principal, Error> {
    let now = state.now();
    let issuer = &state.config.tokens.issuer;
    let mut verified = state
        .token_cache
        .verify(token, &state.keyring(), issuer, now);
    // A key this instance has not loaded yet may be one another instance sharing the database
    // just made: read the keys back (at most once a second) and look again.
    if matches!(verified, Err(JwtError::UnknownKey)) && !state.store.is_redb() {
        state.reload_keys(true).await?;
        verified = state
            .token_cache
            .verify(token, &state.keyring(), issuer, now);
    }
    let claims = verified.map_err(|e| {
        tracing::debug!(reason = ?e, "access token refused");
        Error::Unauthorized
    })?;
    let Some(found) = state
        .store
        .session_with_user(claims.sid.clone(), now)
        .await?
    else {
        // Disabling ends every session; the holder of a token learns why it stopped working.
        let disabled = state
            .store
            .user_by_id(claims.sub.clone())
            .await?
            .is_some_and(|u| u.disabled);
        return Err(if disabled {
            Error::AccountDisabled
        } else {
            Error::Unauthorized
        });
    };
    let (session, user) = &*found;
    if session.user_id != claims.sub {
        return Err(Error::Unauthorized);
    }
    if user.disabled {
        return Err(Error::AccountDisabled);
    }
    Ok(Principal {
        user: User::from(user),
        credential: Credential::Session {
            session_id: session.id.clone(),
            auth_time: session.auth_time,
        },
    })
}

/// An API key: checksum (no store), one SHA-256, one read (or a cache hit); its use is noted in
/// memory only.
async fn authenticate_key(state: &AppState, key: &str) -> Result<Principal, Error> {
    if !api_key::well_formed(key, &state.config.api_keys.prefix) {
        return Err(Error::Unauthorized);
    }
    let hash = random::sha256(key.as_bytes());
    let now = state.now();
    let Some(found) = state.store.api_key_with_user(hash, now).await? else {
        return Err(Error::Unauthorized);
    };
    let (key, user) = &*found;
    if user.disabled {
        return Err(Error::AccountDisabled);
    }
    state.key_usage.note(hash, now);
    Ok(Principal {
        user: User::from(user),
        credential: Credential::ApiKey {
            key_id: key.id.clone(),
            scopes: key.scopes.clone(),
        },
    })
}

/// The scopes a principal holds: a session holds every configured scope.
pub fn scopes<'a>(state: &'a AppState, who: &'a Principal) -> &'a [String] {
    match &who.credential {
        Credential::Session { .. } => &state.config.api_keys.scopes,
        Credential::ApiKey { scopes, .. } => scopes,
    }
}

/// Check that `who` holds every scope in `wanted`.
pub fn require_scopes(state: &AppState, who: &Principal, wanted: &[String]) -> Result<(), Error> {
    let held = scopes(state, who);
    if wanted.iter().all(|w| held.contains(w)) {
        Ok(())
    } else {
        Err(Error::InsufficientScope)
    }
}

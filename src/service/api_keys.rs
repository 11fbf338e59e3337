//! API keys: issue (shown once), list, revoke. Only a session may manage keys.

use crate::crypto::{api_key, random};
use crate::domain::audit::EventKind;
use crate::domain::models::{ApiKey, ClientInfo, SessionCaller};
use crate::domain::types::{KeyName, Scopes};
use crate::error::Error;
use crate::secret::Secret;
use crate::service::state::AppState;
use crate::store::KeyCreateOutcome;

use super::audit;
use super::notices::{self, Notice};
use super::rate_limit::Bucket;

/// Creating and revoking keys are durable writes; one session must not flood the database.
async fn write_allowed(state: &AppState, who: &SessionCaller) -> Result<(), Error> {
    super::limits::take_account(state, Bucket::AccountWrites, &who.user.id).await
}

/// A validated request for a new key.
#[derive(Debug)]
pub struct KeyRequest {
    /// Name.
    pub name: KeyName,
    /// Scopes.
    pub scopes: Scopes,
    /// Lifetime.
    pub expires_in: std::time::Duration,
}

/// Create a key for the caller; the returned secret is never available again.
pub async fn create(
    state: &AppState,
    who: &SessionCaller,
    req: KeyRequest,
    client: &ClientInfo,
) -> Result<(Secret, ApiKey), Error> {
    let session_id = &who.session_id;
    let now = state.now();
    write_allowed(state, who).await?;
    let generated = api_key::generate(&state.config.api_keys.prefix);
    let ttl = crate::clock::secs(req.expires_in);
    let key = ApiKey {
        id: random::id("key-"),
        hash: generated.hash,
        user_id: who.user.id.clone(),
        name: req.name.into_inner(),
        prefix: generated.shown,
        scopes: req.scopes.into_inner(),
        created_at: now,
        expires_at: now + ttl,
        last_used_at: None,
    };
    let event = audit::in_session(state, EventKind::ApiKeyCreated, who, client)
        .key(&key.id)
        .detail("name", key.name.as_str())
        .detail("scopes", key.scopes.join(" "));
    match state
        .store
        .create_api_key(key.clone(), state.config.api_keys.max_per_user, event)
        .await?
    {
        KeyCreateOutcome::LimitReached => Err(Error::ApiKeyLimitReached),
        KeyCreateOutcome::Created => {
            tracing::info!(user_id = %key.user_id, session_id = %session_id, key_id = %key.id, "api key created");
            notices::send(
                state,
                &who.user.email,
                Notice::ApiKeyCreated(key.name.clone()),
            )
            .await;
            Ok((generated.secret, key))
        }
    }
}

/// The caller's live keys, newest first, with use not yet written folded in, so `last_used_at`
/// is current without listing ever costing a write.
pub async fn list(state: &AppState, who: &SessionCaller) -> Result<Vec<ApiKey>, Error> {
    let mut keys = state
        .store
        .list_api_keys(who.user.id.clone(), state.now())
        .await?;
    let pending = state.key_usage.pending(keys.iter().map(|k| k.hash));
    for (key, used) in keys.iter_mut().zip(pending) {
        key.last_used_at = key.last_used_at.max(used);
    }
    Ok(keys)
}

/// Revoke one of the caller's keys; another user's or an unknown id is `NotFound`.
pub async fn revoke(
    state: &AppState,
    who: &SessionCaller,
    key_id: &str,
    client: &ClientInfo,
) -> Result<(), Error> {
    let session_id = &who.session_id;
    write_allowed(state, who).await?;
    let event = audit::in_session(state, EventKind::ApiKeyRevoked, who, client).key(key_id);
    if state
        .store
        .revoke_api_key(who.user.id.clone(), key_id.to_string(), event)
        .await?
    {
        tracing::info!(user_id = %who.user.id, session_id = %session_id, key_id = %key_id, "api key revoked");
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

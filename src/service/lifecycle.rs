//! Account lifecycle a user drives from a session: change the password, delete the account.
//! Both take the password again, as a guess under the same limits as a login's.

use crate::domain::audit::{Event, EventKind};
use crate::domain::models::{ClientInfo, SessionCaller};
use crate::domain::password::Password;
use crate::domain::types::FieldError;
use crate::error::Error;
use crate::secret::Secret;
use crate::service::state::AppState;
use crate::store::{DeleteBy, DeleteOutcome};

use super::notices::{self, Notice};
use super::{audit, guesses};

/// Replace the password: the current one must be right, the new one pass the policy. Every
/// other session of the user ends; this one stays.
pub async fn change_password(
    state: &AppState,
    who: &SessionCaller,
    current: Password,
    new: Password,
    client: &ClientInfo,
) -> Result<(), Error> {
    let ip = client.ip;
    let min_length = state.config.passwords.min_length;
    new.check_new(min_length, Some(&who.user.email))
        .map_err(|e| {
            Error::Validation(vec![FieldError {
                field: "new_password",
                code: e.code,
            }])
        })?;
    let account = guesses::confirm_password(state, &who.user.id, current, ip).await?;
    let hash = state.hasher.hash(new).await?;
    state
        .store
        .change_password(
            account.id.clone(),
            hash,
            who.session_id.clone(),
            audit::in_session(state, EventKind::PasswordChanged, who, client),
        )
        .await?;
    tracing::info!(user_id = %account.id, session_id = %who.session_id, client = ip.map(tracing::field::display), "password changed");
    notices::send(state, &account.email, Notice::PasswordChanged).await;
    Ok(())
}

/// Delete the account: the password, and with two-factor authentication on a code too. The
/// user, its sessions, API keys and two-factor state go in one transaction.
pub async fn delete_account(
    state: &AppState,
    who: &SessionCaller,
    password: Password,
    code: Option<Secret>,
    client: &ClientInfo,
) -> Result<(), Error> {
    let ip = client.ip;
    let account = state
        .store
        .user_by_id(who.user.id.clone())
        .await?
        .ok_or(Error::Unauthorized)?;
    let guess = guesses::begin(state, &account, ip).await?;
    let event = audit::in_session(state, EventKind::AccountDeleted, who, client);
    let outcome = confirm_and_delete(state, &account, password, code, event).await;
    let outcome = guess.settle(outcome);
    if outcome.is_ok() {
        tracing::info!(user_id = %account.id, session_id = %who.session_id, client = ip.map(tracing::field::display), "account deleted");
        notices::send(state, &account.email, Notice::AccountDeleted).await;
    }
    outcome
}

async fn confirm_and_delete(
    state: &AppState,
    account: &crate::domain::account::Account,
    password: Password,
    code: Option<Secret>,
    event: Event,
) -> Result<(), Error> {
    let verified = state
        .hasher
        .verify(password, Some(account.password_hash.clone()))
        .await?;
    if !verified.ok {
        return Err(Error::InvalidPassword);
    }
    let used = if account.two_factor.enabled {
        let Some(code) = code.filter(|c| !c.expose().is_empty()) else {
            return Err(Error::TotpRequired);
        };
        let Some(used) = super::two_factor::check_code(state, account, code.expose()).await? else {
            return Err(Error::InvalidTotpCode);
        };
        Some(used)
    } else {
        None
    };
    let by = DeleteBy::User(used);
    match state
        .store
        .delete_account(account.id.clone(), by, event)
        .await?
    {
        DeleteOutcome::Deleted => Ok(()),
        DeleteOutcome::TotpRequired => Err(Error::TotpRequired),
        DeleteOutcome::SecondFactorSpent => Err(Error::InvalidTotpCode),
    }
}

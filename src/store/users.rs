//! Accounts: creation with the email index, lookup by email, and the login write.

use redb::ReadableTable;

use crate::clock::UnixTime;
use crate::secret::Secret;

use crate::domain::account::{Account, FactorGate, SecondFactorUse, TwoFactor};

use crate::domain::audit::Event;

use super::audit::{append, with_factor};
use super::records::decode_user;
use super::rows::{delete_user, get_user, put_user};
use super::schema::{USERS, USERS_BY_EMAIL};
use super::sessions::{delete_sessions_where, insert_session, NewSession};
use super::{Changed, RedbStore, StoreError};

/// What a new account is made of.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// `user-` + random.
    pub id: String,
    /// As typed (trimmed).
    pub email: String,
    /// Lowercased email, the uniqueness key.
    pub email_key: String,
    /// Display name.
    pub name: String,
    /// Optional company.
    pub company: Option<String>,
    /// Plan from config.
    pub plan: String,
    /// scrypt PHC string.
    pub password_hash: Secret,
    /// Now.
    pub created_at: UnixTime,
}

impl NewUser {
    /// The account it makes: unverified, enabled, without two-factor authentication.
    pub(super) fn into_account(self) -> Account {
        Account {
            id: self.id,
            email: self.email,
            name: self.name,
            company: self.company,
            plan: self.plan,
            password_hash: self.password_hash,
            created_at: self.created_at,
            email_verified_at: None,
            disabled: false,
            two_factor: TwoFactor::default(),
            login_networks: Vec::new(),
        }
    }
}

/// Result of creating an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Account and first session are committed.
    Created,
    /// The email belongs to another account; nothing was written.
    EmailTaken,
}

impl RedbStore {
    /// Whether an account uses this (lowercased) email. A hint only: `create_account` decides.
    pub async fn email_taken(&self, email_key: String) -> Result<bool, StoreError> {
        self.read(move |tx| {
            Ok(tx
                .open_table(USERS_BY_EMAIL)?
                .get(email_key.as_str())?
                .is_some())
        })
        .await
    }

    /// The account with this (lowercased) email.
    pub async fn user_by_email(&self, email_key: String) -> Result<Option<Account>, StoreError> {
        self.read(move |tx| {
            let index = tx.open_table(USERS_BY_EMAIL)?;
            let Some(id) = index.get(email_key.as_str())? else {
                return Ok(None);
            };
            let users = tx.open_table(USERS)?;
            let Some(bytes) = users.get(id.value())? else {
                return Err(StoreError::Corrupt(format!(
                    "users_by_email points at missing user {}",
                    id.value()
                )));
            };
            decode_user(bytes.value()).map(Some)
        })
        .await
    }

    /// Create an account and its first session in one transaction. Email uniqueness is
    /// decided here, inside the transaction, so concurrent registrations cannot both win.
    pub async fn create_account(
        &self,
        user: NewUser,
        session: NewSession,
        events: Vec<Event>,
    ) -> Result<CreateOutcome, StoreError> {
        self.write_if_changed(move |tx| {
            let mut index = tx.open_table(USERS_BY_EMAIL)?;
            if index.get(user.email_key.as_str())?.is_some() {
                return Ok((CreateOutcome::EmailTaken, Changed::No));
            }
            index.insert(user.email_key.as_str(), user.id.as_str())?;
            put_user(tx, &user.into_account())?;
            insert_session(tx, session)?;
            append(tx, &events)?;
            Ok((CreateOutcome::Created, Changed::Yes))
        })
        .await
    }

    /// Open a session after a successful login, in one transaction with what the login used
    /// up: a TOTP step or a backup code (re-checked here, so two logins racing with one code
    /// cannot both win) and a re-hashed password when the configured cost changed.
    pub async fn start_session(
        &self,
        session: NewSession,
        rehash: Option<Secret>,
        second_factor: Option<SecondFactorUse>,
        event: Event,
    ) -> Result<StartOutcome, StoreError> {
        self.write_if_changed(move |tx| {
            let mut user = get_user(tx, &session.user_id)?;
            // An operator may have disabled the account while this login was hashing.
            if user.disabled {
                return Ok((StartOutcome::Disabled, Changed::No));
            }
            match user.two_factor.gate(second_factor.as_ref()) {
                FactorGate::Pass => {}
                FactorGate::Required => return Ok((StartOutcome::TotpRequired, Changed::No)),
                FactorGate::Spent => return Ok((StartOutcome::SecondFactorSpent, Changed::No)),
            }
            if let Some(hash) = rehash {
                user.password_hash = hash;
            }
            remember_network(&mut user, &session);
            put_user(tx, &user)?;
            insert_session(tx, session)?;
            append(tx, &with_factor(event, second_factor.as_ref()))?;
            Ok((StartOutcome::Started, Changed::Yes))
        })
        .await
    }

    /// Replace the password hash and end every session of the user but `keep_session`.
    pub async fn change_password(
        &self,
        user_id: String,
        new_hash: Secret,
        keep_session: String,
        event: Event,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            let mut user = get_user(tx, &user_id)?;
            user.password_hash = new_hash;
            put_user(tx, &user)?;
            delete_sessions_where(tx, &user_id, |s| s.id != keep_session)?;
            append(tx, &[event])
        })
        .await
    }

    /// Delete the account with its email, sessions, API keys and two-factor state, in one
    /// transaction. A user's own deletion re-checks here, as at login, the second factor that
    /// confirmed it; an operator's needs none.
    pub async fn delete_account(
        &self,
        user_id: String,
        by: DeleteBy,
        event: Event,
    ) -> Result<DeleteOutcome, StoreError> {
        self.write_if_changed(move |tx| {
            let mut user = get_user(tx, &user_id)?;
            if let DeleteBy::User(used) = &by {
                match user.two_factor.gate(used.as_ref()) {
                    FactorGate::Pass => {}
                    FactorGate::Required => return Ok((DeleteOutcome::TotpRequired, Changed::No)),
                    FactorGate::Spent => {
                        return Ok((DeleteOutcome::SecondFactorSpent, Changed::No))
                    }
                }
            }
            delete_sessions_where(tx, &user_id, |_| true)?;
            super::api_keys::delete_keys_of(tx, &user_id)?;
            tx.open_table(USERS_BY_EMAIL)?
                .remove(user.email.to_ascii_lowercase().as_str())?;
            delete_user(tx, &user_id)?;
            let used = match &by {
                DeleteBy::User(used) => used.as_ref(),
                DeleteBy::Operator => None,
            };
            let event = event.user(&user_id).detail("email", user.email);
            append(tx, &with_factor(event, used))?;
            Ok((DeleteOutcome::Deleted, Changed::Yes))
        })
        .await
    }
}

/// Who deletes an account, and with what second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteBy {
    /// The user, with the code that confirmed it when two-factor authentication is on.
    User(Option<SecondFactorUse>),
    /// An operator (admin CLI).
    Operator,
}

/// Result of deleting an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The account and everything of it are gone.
    Deleted,
    /// Two-factor authentication went on meanwhile and no code was given; nothing changed.
    TotpRequired,
    /// The code was used by another request first; nothing changed.
    SecondFactorSpent,
}

/// Result of opening a session at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// Committed.
    Started,
    /// Another request used the same TOTP step or backup code first; nothing was written.
    SecondFactorSpent,
    /// Two-factor authentication was turned on meanwhile and no code was given.
    TotpRequired,
    /// The account was disabled meanwhile.
    Disabled,
}

/// A completed login makes its client network known to the account lock.
fn remember_network(user: &mut Account, session: &NewSession) {
    if let Some(network) = &session.network {
        crate::domain::net::note_login_network(
            &mut user.login_networks,
            network.clone(),
            session.now,
        );
    }
}

//! Two-factor state of an account: the pending secret from setup, enabling it with backup
//! codes (ending the user's other sessions), and disabling it.

use crate::domain::account::{Account, EnableRefused, SecondFactorUse};
use crate::secret::SecretBytes;

use crate::domain::audit::Event;

use super::audit::{append, with_factor};
use super::records::decode_user;
use super::rows::{get_user, put_user};
use super::sessions::delete_sessions_where;
use super::{Changed, RedbStore, StoreError};

/// Result of storing a pending secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupOutcome {
    /// Stored, replacing any earlier unconfirmed secret.
    Pending,
    /// Two-factor authentication is already on; nothing changed.
    AlreadyEnabled,
}

/// Result of disabling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableOutcome {
    /// Off; secret and backup codes forgotten.
    Disabled,
    /// It was not on.
    NotEnabled,
    /// The code was used by another request first; nothing changed.
    CodeSpent,
}

/// Result of enabling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableOutcome {
    /// On, with the backup codes given.
    Enabled,
    /// It was already on; nothing changed.
    AlreadyEnabled,
    /// The pending secret changed (a newer setup) since the code was checked; nothing changed.
    PendingChanged,
}

/// What confirming enrolment turns on: the pending secret the code was checked against, the
/// step it matched, and the backup codes' salt and digests.
#[derive(Debug)]
pub struct Confirmed {
    /// The pending secret that was checked.
    pub secret: SecretBytes,
    /// The TOTP step the code matched (used up).
    pub step: i64,
    /// Salt of the backup-code digests.
    pub backup_salt: [u8; 16],
    /// The backup codes' digests.
    pub backup_digests: Vec<[u8; 32]>,
}

impl RedbStore {
    /// Keep `secret` as the user's unconfirmed TOTP secret.
    pub async fn set_pending_totp(
        &self,
        user_id: String,
        secret: SecretBytes,
        event: Event,
    ) -> Result<SetupOutcome, StoreError> {
        self.write_if_changed(move |tx| {
            let mut user = get_user(tx, &user_id)?;
            if user.two_factor.enabled {
                return Ok((SetupOutcome::AlreadyEnabled, Changed::No));
            }
            user.two_factor.pending = Some(secret);
            put_user(tx, &user)?;
            append(tx, &[event])?;
            Ok((SetupOutcome::Pending, Changed::Yes))
        })
        .await
    }

    /// Turn two-factor authentication on with the pending secret that was checked (`confirmed`),
    /// record `step` as used, store the backup-code digests, and end every session of the user
    /// but `keep_session`.
    pub async fn enable_totp(
        &self,
        user_id: String,
        confirmed: Confirmed,
        keep_session: String,
        event: Event,
    ) -> Result<EnableOutcome, StoreError> {
        self.write_if_changed(move |tx| {
            let mut user = get_user(tx, &user_id)?;
            let Confirmed {
                secret,
                step,
                backup_salt,
                backup_digests,
            } = confirmed;
            match user
                .two_factor
                .enable(&secret, step, backup_salt, backup_digests)
            {
                Err(EnableRefused::AlreadyEnabled) => {
                    return Ok((EnableOutcome::AlreadyEnabled, Changed::No))
                }
                Err(EnableRefused::PendingChanged) => {
                    return Ok((EnableOutcome::PendingChanged, Changed::No))
                }
                Ok(()) => {}
            }
            put_user(tx, &user)?;
            delete_sessions_where(tx, &user_id, |s| s.id != keep_session)?;
            append(tx, &[event])?;
            Ok((EnableOutcome::Enabled, Changed::Yes))
        })
        .await
    }

    /// Turn two-factor authentication off and forget its secret and backup codes, spending the
    /// code that confirmed it in the same transaction.
    pub async fn disable_totp(
        &self,
        user_id: String,
        used: SecondFactorUse,
        event: Event,
    ) -> Result<DisableOutcome, StoreError> {
        self.write_if_changed(move |tx| {
            let mut user = get_user(tx, &user_id)?;
            if !user.two_factor.enabled {
                return Ok((DisableOutcome::NotEnabled, Changed::No));
            }
            if !user.two_factor.spend(&used) {
                return Ok((DisableOutcome::CodeSpent, Changed::No));
            }
            user.two_factor.clear();
            put_user(tx, &user)?;
            append(tx, &with_factor(event, Some(&used)))?;
            Ok((DisableOutcome::Disabled, Changed::Yes))
        })
        .await
    }

    /// The whole account, for checks that need the second-factor state.
    pub async fn user_by_id(&self, user_id: String) -> Result<Option<Account>, StoreError> {
        self.read(move |tx| {
            let users = tx.open_table(super::schema::USERS)?;
            match users.get(user_id.as_str())? {
                Some(bytes) => Ok(Some(decode_user(bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }
}

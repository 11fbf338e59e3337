//! One-time tokens sent by mail (verify an email, reset a password, confirm an email change),
//! kept only as SHA-256: issued in the same transaction as the mail that carries them, single
//! use, refused once expired, and voided by a newer token of the same kind for the same user.

use redb::{ReadableTable, WriteTransaction};

use crate::clock::UnixTime;
use crate::domain::account::{Account, FactorGate, SecondFactorUse};
use crate::domain::mail::{OutgoingMail, TokenKind};
use crate::secret::Secret;

use crate::domain::audit::Event;

use super::audit::{append, with_factor};
use super::outbox::queue_mail;
use super::records::{decode, decode_user, encode, MailTokenRecord, RECORD_VERSION};
use super::rows::{get_user, put_user};
use super::schema::{LATEST_MAIL_TOKEN, MAIL_TOKENS, USERS, USERS_BY_EMAIL};
use super::sessions::delete_sessions_where;
use super::{Changed, RedbStore, StoreError};

/// A token to issue and the mail that carries it.
#[derive(Debug, Clone)]
pub struct NewMailToken {
    /// What it proves.
    pub kind: TokenKind,
    /// The account.
    pub user_id: String,
    /// Where the mail goes.
    pub email: String,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// End of its life.
    pub expires_at: UnixTime,
    /// The message with the link; none when the link is handed over some other way (an
    /// operator's `user reset-password`).
    pub mail: Option<OutgoingMail>,
}

/// What using a verification token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The email is verified now (or already was); the user's id.
    Done(String),
    /// Wrong, used, expired, or for an address the account no longer has.
    Invalid,
}

/// What using a reset token did.
#[derive(Debug, Clone)]
pub enum Reset {
    /// The password is replaced and every session ended; the account.
    Done(Box<Account>),
    /// Wrong, used or expired.
    Invalid,
    /// Two-factor authentication is on and no code was given (the token stays usable).
    TotpRequired,
    /// The code was used by another request first (the token stays usable).
    SecondFactorSpent,
}

/// What using an email-change token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChange {
    /// The account's email is the new one now: (user id, old email, new email).
    Done(String, String, String),
    /// Wrong, used or expired.
    Invalid,
    /// Another account took the new address meanwhile (the token is used up).
    Taken,
}

fn latest_key(user_id: &str, kind: TokenKind) -> String {
    format!("{user_id}/{}", kind.as_str())
}

impl RedbStore {
    /// Store the token and queue its mail in one transaction, voiding the user's previous token
    /// of the same kind.
    pub async fn issue_mail_token(&self, t: NewMailToken, now: UnixTime) -> Result<(), StoreError> {
        self.write(move |tx| {
            let key = latest_key(&t.user_id, t.kind);
            let previous = tx
                .open_table(LATEST_MAIL_TOKEN)?
                .get(key.as_str())?
                .map(|h| h.value().to_vec());
            let mut tokens = tx.open_table(MAIL_TOKENS)?;
            if let Some(previous) = previous {
                tokens.remove(previous.as_slice())?;
            }
            let record = MailTokenRecord {
                v: RECORD_VERSION,
                kind: t.kind.as_str().to_string(),
                user_id: t.user_id.clone(),
                email: t.email.clone(),
                expires_at: t.expires_at,
            };
            tokens.insert(t.hash.as_slice(), encode(&record)?.as_slice())?;
            drop(tokens);
            tx.open_table(LATEST_MAIL_TOKEN)?
                .insert(key.as_str(), t.hash.as_slice())?;
            if let Some(mail) = &t.mail {
                queue_mail(tx, mail, now)?;
            }
            Ok(())
        })
        .await
    }

    /// Use a verification token: single use; the account's email is marked verified if it is
    /// still the address the token was sent to.
    pub async fn verify_email_with(
        &self,
        hash: [u8; 32],
        now: UnixTime,
        event: Event,
    ) -> Result<Verified, StoreError> {
        self.write_if_changed(move |tx| {
            let Some(token) = take(tx, &hash, TokenKind::Verify, now)? else {
                return Ok((Verified::Invalid, Changed::No));
            };
            let mut user = get_user(tx, &token.user_id)?;
            if !user.email.eq_ignore_ascii_case(&token.email) {
                return Ok((Verified::Invalid, Changed::Yes));
            }
            if user.email_verified_at.is_none() {
                user.email_verified_at = Some(now);
                put_user(tx, &user)?;
                append(tx, &[event.user(&user.id)])?;
            }
            Ok((Verified::Done(user.id), Changed::Yes))
        })
        .await
    }
}

impl RedbStore {
    /// The account a live reset token belongs to, without using the token: a reset with 2FA
    /// checks the code against it first.
    pub async fn reset_token_account(
        &self,
        hash: [u8; 32],
        now: UnixTime,
    ) -> Result<Option<Account>, StoreError> {
        self.read(move |tx| {
            let tokens = tx.open_table(MAIL_TOKENS)?;
            let Some(bytes) = tokens.get(hash.as_slice())? else {
                return Ok(None);
            };
            let token: MailTokenRecord = decode("mail_tokens", bytes.value())?;
            if token.kind != TokenKind::Reset.as_str() || now >= token.expires_at {
                return Ok(None);
            }
            let users = tx.open_table(USERS)?;
            match users.get(token.user_id.as_str())? {
                Some(bytes) => Ok(Some(decode_user(bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Use a reset token: the password becomes `new_hash`, every session ends, the email counts
    /// as verified (the mailbox was proven), in one transaction. With 2FA on, `used` must still
    /// be spendable; otherwise nothing changes and the token stays usable.
    pub async fn reset_password_with(
        &self,
        hash: [u8; 32],
        new_hash: Secret,
        used: Option<SecondFactorUse>,
        now: UnixTime,
        event: Event,
    ) -> Result<Reset, StoreError> {
        self.write_if_changed(move |tx| {
            let Some(token) = peek(tx, &hash, TokenKind::Reset, now)? else {
                return Ok((Reset::Invalid, Changed::No));
            };
            let mut user = get_user(tx, &token.user_id)?;
            match user.two_factor.gate(used.as_ref()) {
                FactorGate::Pass => {}
                FactorGate::Required => return Ok((Reset::TotpRequired, Changed::No)),
                FactorGate::Spent => return Ok((Reset::SecondFactorSpent, Changed::No)),
            }
            take(tx, &hash, TokenKind::Reset, now)?;
            user.password_hash = new_hash;
            user.email_verified_at.get_or_insert(now);
            put_user(tx, &user)?;
            delete_sessions_where(tx, &user.id, |_| true)?;
            append(tx, &with_factor(event.user(&user.id), used.as_ref()))?;
            Ok((Reset::Done(Box::new(user)), Changed::Yes))
        })
        .await
    }
}

impl RedbStore {
    /// Use an email-change token: the account's email becomes the address the token was sent
    /// to, if no other account has taken it meanwhile, and counts as verified.
    pub async fn change_email_with(
        &self,
        hash: [u8; 32],
        now: UnixTime,
        event: Event,
    ) -> Result<EmailChange, StoreError> {
        self.write_if_changed(move |tx| {
            let Some(token) = take(tx, &hash, TokenKind::Change, now)? else {
                return Ok((EmailChange::Invalid, Changed::No));
            };
            let mut user = get_user(tx, &token.user_id)?;
            let new_key = token.email.to_ascii_lowercase();
            let old_key = user.email.to_ascii_lowercase();
            let mut index = tx.open_table(USERS_BY_EMAIL)?;
            let owner = index.get(new_key.as_str())?.map(|v| v.value().to_string());
            if owner.is_some_and(|id| id != user.id) {
                return Ok((EmailChange::Taken, Changed::Yes));
            }
            index.remove(old_key.as_str())?;
            index.insert(new_key.as_str(), user.id.as_str())?;
            drop(index);
            let old = std::mem::replace(&mut user.email, token.email.clone());
            user.email_verified_at = Some(now);
            put_user(tx, &user)?;
            let event = event
                .user(&user.id)
                .detail("from", old.as_str())
                .detail("to", token.email.as_str());
            append(tx, &[event])?;
            Ok((EmailChange::Done(user.id, old, token.email), Changed::Yes))
        })
        .await
    }
}

/// The live token of `kind` with this hash, left in place.
fn peek(
    tx: &WriteTransaction,
    hash: &[u8; 32],
    kind: TokenKind,
    now: UnixTime,
) -> Result<Option<MailTokenRecord>, StoreError> {
    let tokens = tx.open_table(MAIL_TOKENS)?;
    let Some(bytes) = tokens.get(hash.as_slice())? else {
        return Ok(None);
    };
    let token: MailTokenRecord = decode("mail_tokens", bytes.value())?;
    Ok((token.kind == kind.as_str() && now < token.expires_at).then_some(token))
}

/// Remove and return the live token of `kind` with this hash, if there is one; an expired one
/// is removed too, and refused.
fn take(
    tx: &WriteTransaction,
    hash: &[u8; 32],
    kind: TokenKind,
    now: UnixTime,
) -> Result<Option<MailTokenRecord>, StoreError> {
    let mut tokens = tx.open_table(MAIL_TOKENS)?;
    let Some(bytes) = tokens.get(hash.as_slice())?.map(|b| b.value().to_vec()) else {
        return Ok(None);
    };
    let token: MailTokenRecord = decode("mail_tokens", &bytes)?;
    if token.kind != kind.as_str() {
        return Ok(None);
    }
    tokens.remove(hash.as_slice())?;
    drop(tokens);
    let key = latest_key(&token.user_id, kind);
    let mut latest = tx.open_table(LATEST_MAIL_TOKEN)?;
    if latest
        .get(key.as_str())?
        .is_some_and(|h| h.value() == hash.as_slice())
    {
        latest.remove(key.as_str())?;
    }
    Ok((now < token.expires_at).then_some(token))
}

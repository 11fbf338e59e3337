//! What mailed links prove: an email address (verification, at register and on request) and
//! the owner of a mailbox (a password reset). Each token is 256 random bits, stored only as its
//! SHA-256, in the same transaction as the mail that carries it; single use; voided by a newer
//! one of its kind.

use crate::domain::audit::{Event, EventKind};
use crate::domain::models::ClientInfo;
use std::sync::Arc;

use crate::clock::secs;
use crate::crypto::random;
use crate::domain::mail::{OutgoingMail, TokenKind};
use crate::domain::models::{SessionCaller, User};
use crate::domain::password::Password;
use crate::domain::types::Email;
use crate::error::Error;
use crate::secret::Secret;
use crate::service::state::AppState;
use crate::store::{EmailChange, MailTokenReset, MailTokenVerified, NewMailToken};

use super::notices::{self, Notice};
use super::rate_limit::Bucket;
use super::{guesses, two_factor};

/// `POST /v1/auth/email/verification`: send a new link (voiding the previous one).
pub async fn request_verification(state: &AppState, who: &SessionCaller) -> Result<(), Error> {
    if !state.mailer.enabled() {
        return Err(Error::EmailNotConfigured);
    }
    if who.user.email_verified_at.is_some() {
        return Err(Error::EmailAlreadyVerified);
    }
    super::limits::take_account(state, Bucket::VerificationMail, &who.user.id).await?;
    send_verification(state, &who.user).await
}

/// Mail `user` a link that proves its address; no-op when mail goes nowhere.
pub async fn send_verification(state: &AppState, user: &User) -> Result<(), Error> {
    if !state.mailer.enabled() {
        return Ok(());
    }
    let token = random::token();
    let link = format!("{}/verify-email?token={token}", state.config.public_url);
    let issuer = &state.config.issuer;
    let mail = OutgoingMail {
        to: user.email.clone(),
        subject: format!("{issuer}: verify your email address"),
        text: format!(
            "Open this link to verify your email address:\n\n{link}\n\nIt works once, for {}. If you did not sign up, ignore this mail.\n",
            humantime::format_duration(state.config.email.verification_ttl)
        ),
        html: format!(
            "<!doctype html><p>Verify your email address:</p><p><a href=\"{link}\">Verify</a></p><p>If you did not sign up, ignore this mail.</p>"
        ),
    };
    issue(
        state,
        TokenKind::Verify,
        &user.id,
        &user.email,
        &token,
        Some(mail),
    )
    .await?;
    tracing::info!(user_id = %user.id, "verification mail queued");
    Ok(())
}

/// `POST /v1/auth/email/verify`: a wrong, used or expired token is `invalid_token`.
pub async fn verify(state: &AppState, token: Secret, client: &ClientInfo) -> Result<(), Error> {
    let hash = random::sha256(token.expose().as_bytes());
    let now = state.now();
    let event = Event::by_user(EventKind::EmailVerified, now, client);
    match state.store.verify_email_with(hash, now, event).await? {
        MailTokenVerified::Done(user_id) => {
            tracing::info!(user_id = %user_id, "email verified");
            Ok(())
        }
        MailTokenVerified::Invalid => Err(Error::InvalidToken),
    }
}

/// `POST /v1/auth/password/forgot`: always the same answer. A link goes only to an existing,
/// enabled account, at most `rate_limits.account_mail` a time (beyond it, silently nothing),
/// and the token is issued off the request path, so neither the answer nor its timing tells
/// whether the account exists. Only the client's own rate (429) is visible; with
/// `email.transport = "none"` the answer is the same and nothing is sent.
pub async fn forgot_password(
    state: &Arc<AppState>,
    email: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<(), Error> {
    super::limits::take_client(state, Bucket::ForgotPassword, ip).await?;
    // Without mail the answer stays the generic one too: no token is made, and the operator's
    // `user reset-password` hands out links instead.
    let Ok(email) = Email::parse(email).map_err(drop).and_then(|e| {
        if state.mailer.enabled() {
            Ok(e)
        } else {
            Err(())
        }
    }) else {
        return Ok(());
    };
    let state = state.clone();
    tokio::spawn(tracing::Instrument::in_current_span(async move {
        if let Err(e) = send_reset(&state, email.key()).await {
            tracing::error!(error = %e, "could not queue a password-reset mail");
        }
    }));
    Ok(())
}

async fn send_reset(state: &AppState, email_key: String) -> Result<(), Error> {
    let Some(account) = state.store.user_by_email(email_key).await? else {
        return Ok(());
    };
    if account.disabled {
        return Ok(());
    }
    // Beyond the account's mail budget, silently nothing (the answer was given already).
    match super::limits::take_account(state, Bucket::ResetMail, &account.id).await {
        Ok(()) => {}
        Err(Error::RateLimited { .. }) => return Ok(()),
        Err(e) => return Err(e),
    }
    let token = random::token();
    let link = format!("{}/reset-password?token={token}", state.config.public_url);
    let issuer = &state.config.issuer;
    let ttl = state.config.email.reset_ttl;
    let mail = OutgoingMail {
        to: account.email.clone(),
        subject: format!("{issuer}: reset your password"),
        text: format!(
            "Someone asked to reset the password of your account. Open this link to choose a new one:\n\n{link}\n\nIt works once, for {}. If it was not you, ignore this mail: your password stays as it is.\n",
            humantime::format_duration(ttl)
        ),
        html: format!(
            "<!doctype html><p>Someone asked to reset the password of your account.</p><p><a href=\"{link}\">Choose a new password</a></p><p>If it was not you, ignore this mail: your password stays as it is.</p>"
        ),
    };
    issue(
        state,
        TokenKind::Reset,
        &account.id,
        &account.email,
        &token,
        Some(mail),
    )
    .await?;
    tracing::info!(user_id = %account.id, "password-reset mail queued");
    Ok(())
}

/// `POST /v1/auth/password/reset`: a new password with a mailed token (and, with 2FA on, a
/// code: a mailbox alone must not remove the second factor). Every session ends, the account
/// lock is cleared, the email counts as verified.
pub async fn reset_password(
    state: &AppState,
    token: Secret,
    password: Password,
    code: Option<Secret>,
    client: &ClientInfo,
) -> Result<(), Error> {
    let ip = client.ip;
    let hash = random::sha256(token.expose().as_bytes());
    let now = state.now();
    let Some(account) = state.store.reset_token_account(hash, now).await? else {
        return Err(Error::InvalidToken);
    };
    password
        .check_new(state.config.passwords.min_length, Some(&account.email))
        .map_err(|e| Error::Validation(vec![e]))?;
    let used = if account.two_factor.enabled {
        let Some(code) = code.filter(|c| !c.expose().is_empty()) else {
            return Err(Error::TotpRequired);
        };
        let guess = guesses::begin(state, &account, ip).await?;
        match two_factor::check_code(state, &account, code.expose()).await? {
            Some(used) => {
                guess.pending();
                Some(used)
            }
            None => {
                guess.failed();
                return Err(Error::InvalidTotpCode);
            }
        }
    } else {
        None
    };
    let new_hash = state.hasher.hash(password).await?;
    match state
        .store
        .reset_password_with(
            hash,
            new_hash,
            used,
            state.now(),
            Event::by_user(EventKind::PasswordReset, state.now(), client),
        )
        .await?
    {
        MailTokenReset::Done(account) => {
            state.account_lock.succeed(&account.id);
            tracing::info!(user_id = %account.id, client = ip.map(tracing::field::display), "password reset");
            notices::send(state, &account.email, Notice::PasswordReset).await;
            Ok(())
        }
        MailTokenReset::Invalid => Err(Error::InvalidToken),
        MailTokenReset::TotpRequired => Err(Error::TotpRequired),
        MailTokenReset::SecondFactorSpent => Err(Error::InvalidTotpCode),
    }
}

/// An operator's reset link for `account`, handed over by hand (servers without mail): the same
/// single-use token a mailed link carries, voiding any earlier one.
pub async fn reset_link(
    state: &AppState,
    account: &crate::domain::account::Account,
) -> Result<String, Error> {
    let token = random::token();
    issue(
        state,
        TokenKind::Reset,
        &account.id,
        &account.email,
        &token,
        None,
    )
    .await?;
    Ok(format!(
        "{}/reset-password?token={token}",
        state.config.public_url
    ))
}

/// `POST /v1/auth/email/change`: the password again (a guess under the account lock), then a
/// confirmation link to the new address and a notice to the old one. The change happens only
/// when the link is used.
pub async fn request_email_change(
    state: &AppState,
    who: &SessionCaller,
    new_email: &str,
    password: Password,
    ip: Option<std::net::IpAddr>,
) -> Result<(), Error> {
    if !state.mailer.enabled() {
        return Err(Error::EmailNotConfigured);
    }
    let new_email = Email::parse(new_email).map_err(|e| {
        Error::Validation(vec![crate::domain::types::FieldError {
            field: "new_email",
            code: e.code,
        }])
    })?;
    if state.store.email_taken(new_email.key()).await? {
        return Err(Error::EmailTaken);
    }
    let account = guesses::confirm_password(state, &who.user.id, password, ip).await?;
    let token = random::token();
    let link = format!(
        "{}/confirm-email-change?token={token}",
        state.config.public_url
    );
    let issuer = &state.config.issuer;
    let mail = OutgoingMail {
        to: new_email.as_str().to_string(),
        subject: format!("{issuer}: confirm your new email address"),
        text: format!(
            "Open this link to make this your account's email address:\n\n{link}\n\nIf you did not ask for it, ignore this mail.\n"
        ),
        html: format!(
            "<!doctype html><p>Make this your account's email address:</p><p><a href=\"{link}\">Confirm</a></p><p>If you did not ask for it, ignore this mail.</p>"
        ),
    };
    issue(
        state,
        TokenKind::Change,
        &account.id,
        new_email.as_str(),
        &token,
        Some(mail),
    )
    .await?;
    notices::send(state, &account.email, Notice::EmailChangeRequested).await;
    tracing::info!(user_id = %account.id, session_id = %who.session_id, "email change requested");
    Ok(())
}

/// `POST /v1/auth/email/change/confirm`: 409 if the address was taken meanwhile.
pub async fn confirm_email_change(
    state: &AppState,
    token: Secret,
    client: &ClientInfo,
) -> Result<(), Error> {
    let hash = random::sha256(token.expose().as_bytes());
    let now = state.now();
    let event = Event::by_user(EventKind::EmailChanged, now, client);
    match state.store.change_email_with(hash, now, event).await? {
        EmailChange::Done(user_id, _, _) => {
            tracing::info!(user_id = %user_id, "email changed");
            Ok(())
        }
        EmailChange::Invalid => Err(Error::InvalidToken),
        EmailChange::Taken => Err(Error::EmailTaken),
    }
}

/// How long a token of `kind` lives.
fn ttl(state: &AppState, kind: TokenKind) -> std::time::Duration {
    let email = &state.config.email;
    match kind {
        TokenKind::Verify => email.verification_ttl,
        TokenKind::Reset => email.reset_ttl,
        TokenKind::Change => email.change_ttl,
    }
}

/// Store `token` (as its hash) as `user_id`'s newest of `kind`, voiding the previous one, with
/// the mail that carries it in the same transaction, and wake the delivery worker.
async fn issue(
    state: &AppState,
    kind: TokenKind,
    user_id: &str,
    email: &str,
    token: &str,
    mail: Option<OutgoingMail>,
) -> Result<(), Error> {
    let now = state.now();
    let issued = NewMailToken {
        kind,
        user_id: user_id.to_string(),
        email: email.to_string(),
        hash: random::sha256(token.as_bytes()),
        expires_at: now + secs(ttl(state, kind)),
        mail,
    };
    let mailed = issued.mail.is_some();
    state.store.issue_mail_token(issued, now).await?;
    if mailed {
        state.mailer.wake();
    }
    Ok(())
}

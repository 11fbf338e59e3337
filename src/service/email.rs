//! Email verification: a one-time link to the account's address (at register, and on request),
//! and using it. The token is 256 random bits, stored only as its SHA-256, in the same
//! transaction as the mail that carries it.

use crate::clock::secs;
use crate::crypto::random;
use crate::domain::mail::{OutgoingMail, TokenKind};
use crate::domain::models::{SessionCaller, User};
use crate::error::Error;
use crate::secret::Secret;
use crate::service::state::AppState;
use crate::store::{MailTokenVerified, NewMailToken};

use super::rate_limit::Bucket;

/// `POST /v1/auth/email/verification`: send a new link (voiding the previous one).
pub async fn request_verification(state: &AppState, who: &SessionCaller) -> Result<(), Error> {
    if !state.mailer.enabled() {
        return Err(Error::EmailNotConfigured);
    }
    if who.user.email_verified_at.is_some() {
        return Err(Error::EmailAlreadyVerified);
    }
    state
        .rate_limiter
        .take_for_account(Bucket::VerificationMail, &who.user.id, state.now())?;
    send_verification(state, &who.user).await
}

/// Mail `user` a link that proves its address; no-op when mail goes nowhere.
pub async fn send_verification(state: &AppState, user: &User) -> Result<(), Error> {
    if !state.mailer.enabled() {
        return Ok(());
    }
    let token = random::token();
    let now = state.now();
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
    let issued = NewMailToken {
        kind: TokenKind::Verify,
        user_id: user.id.clone(),
        email: user.email.clone(),
        hash: random::sha256(token.as_bytes()),
        expires_at: now + secs(state.config.email.verification_ttl),
        mail,
    };
    state.store.issue_mail_token(issued, now).await?;
    state.mailer.wake();
    tracing::info!(user_id = %user.id, "verification mail queued");
    Ok(())
}

/// `POST /v1/auth/email/verify`: a wrong, used or expired token is `invalid_token`.
pub async fn verify(state: &AppState, token: Secret) -> Result<(), Error> {
    let hash = random::sha256(token.expose().as_bytes());
    match state.store.verify_email_with(hash, state.now()).await? {
        MailTokenVerified::Done(user_id) => {
            tracing::info!(user_id = %user_id, "email verified");
            Ok(())
        }
        MailTokenVerified::Invalid => Err(Error::InvalidToken),
    }
}

//! Two-factor authentication: setup (a pending secret), verify (enable, with backup codes),
//! disable, and the code check that login shares.

use super::audit;
use crate::domain::audit::EventKind;
use crate::domain::models::ClientInfo;

use crate::crypto::{backup_codes, random, totp};
use crate::domain::account::Account;
use crate::domain::account::SecondFactorUse;
use crate::domain::models::SessionCaller;
use crate::domain::password::Password;
use crate::error::Error;
use crate::secret::{Secret, SecretBytes};
use crate::service::state::AppState;
use crate::store::{DisableOutcome, EnableOutcome, SetupOutcome};

use super::guesses;
use super::notices::{self, Notice};
use super::rate_limit::Bucket;

/// How recent a session's password proof must be to enrol an authenticator without sending
/// the password again.
pub const REAUTH_WINDOW_SECS: i64 = 15 * 60;

/// What setup hands the user: the only time the secret is shown. `Debug` shows none of it.
pub struct Enrolment {
    /// Base32 secret.
    pub secret: Secret,
    /// `otpauth://` URL (it contains the secret).
    pub qr_code_url: Secret,
    /// The URL as an inline SVG QR code.
    pub qr_code_svg: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(<hidden>)")
    }
}

async fn record(state: &AppState, who: &SessionCaller) -> Result<Account, Error> {
    state
        .store
        .user_by_id(who.user.id.clone())
        .await?
        .ok_or(Error::Unauthorized)
}

/// Start enrolment: a fresh secret, kept as pending until a code confirms it. Needs a password
/// proof from the last 15 minutes: the session's login, or `password`.
pub async fn setup(
    state: &AppState,
    who: &SessionCaller,
    password: Option<Password>,
    client: &ClientInfo,
) -> Result<Enrolment, Error> {
    let ip = client.ip;
    let (session_id, auth_time) = (&who.session_id, who.auth_time);
    let user = record(state, who).await?;
    if user.two_factor.enabled {
        return Err(Error::TwoFactorAlreadyEnabled);
    }
    if state.now() - auth_time > REAUTH_WINDOW_SECS {
        let Some(password) = password else {
            return Err(Error::ReauthenticationRequired);
        };
        // A stolen session must not become a password oracle: this check is a guess like a
        // login's, under the same limits.
        let guess = guesses::begin(state, &user, ip).await?;
        let verified = state
            .hasher
            .verify(password, Some(user.password_hash.clone()))
            .await?;
        if !verified.ok {
            guess.failed();
            tracing::info!(user_id = %user.id, session_id = %session_id, client = ip.map(tracing::field::display), "2FA setup: wrong password");
            return Err(Error::ReauthenticationRequired);
        }
        guess.succeeded();
    }
    // Each setup is a durable write; one session must not be able to flood the database.
    super::limits::take_account(state, Bucket::AccountWrites, &user.id).await?;
    let secret = totp::new_secret();
    let b32 = totp::encode_secret(&secret);
    let url = totp::otpauth_url(&state.config.issuer, &user.email, &b32);
    let svg = totp::qr_svg(&url).ok_or_else(|| Error::Internal("QR code rendering".into()))?;
    match state
        .store
        .set_pending_totp(
            user.id,
            SecretBytes::new(secret.to_vec()),
            audit::in_session(state, EventKind::TotpSetup, who, client),
        )
        .await?
    {
        SetupOutcome::AlreadyEnabled => Err(Error::TwoFactorAlreadyEnabled),
        SetupOutcome::Pending => Ok(Enrolment {
            secret: Secret::new(b32),
            qr_code_url: Secret::new(url),
            qr_code_svg: svg,
        }),
    }
}

/// Confirm the pending secret with a code: two-factor authentication goes on, the user's other
/// sessions end, and ten backup codes are returned (shown this once).
pub async fn verify(
    state: &AppState,
    who: &SessionCaller,
    code: Secret,
    client: &ClientInfo,
) -> Result<Vec<Secret>, Error> {
    let ip = client.ip;
    let session_id = &who.session_id;
    let now = state.now();
    let user = record(state, who).await?;
    if user.two_factor.enabled {
        return Err(Error::TwoFactorAlreadyEnabled);
    }
    let Some(pending) = user.two_factor.pending.clone() else {
        return Err(Error::TwoFactorNotSetUp);
    };
    let guess = guesses::begin(state, &user, ip).await?;
    let Some(step) = totp::matching_step(pending.expose(), code.expose(), now, None) else {
        guess.failed();
        return Err(Error::InvalidTotpConfirmation);
    };
    let codes = backup_codes::generate();
    let canonical = codes
        .iter()
        .filter_map(|c| backup_codes::normalize(c.expose()))
        .collect();
    let salt = random::bytes::<16>();
    let digests = state.hasher.backup_digests(canonical, salt).await?;
    let outcome = state
        .store
        .enable_totp(
            user.id.clone(),
            crate::store::Confirmed {
                secret: pending,
                step,
                backup_salt: salt,
                backup_digests: digests,
            },
            session_id.to_string(),
            audit::in_session(state, EventKind::TotpEnabled, who, client),
        )
        .await?;
    match outcome {
        EnableOutcome::Enabled => {
            guess.succeeded();
            tracing::info!(user_id = %user.id, session_id = %session_id, client = ip.map(tracing::field::display), "two-factor authentication enabled");
            notices::send(state, &user.email, Notice::TwoFactorEnabled).await;
            Ok(codes)
        }
        EnableOutcome::AlreadyEnabled => {
            guess.pending();
            Err(Error::TwoFactorAlreadyEnabled)
        }
        // A newer setup replaced the secret this code was for.
        EnableOutcome::PendingChanged => {
            guess.failed();
            Err(Error::InvalidTotpConfirmation)
        }
    }
}

/// Turn two-factor authentication off; needs the password and a code (TOTP or backup).
pub async fn disable(
    state: &AppState,
    who: &SessionCaller,
    password: Password,
    code: Secret,
    client: &ClientInfo,
) -> Result<(), Error> {
    let ip = client.ip;
    let session_id = &who.session_id;
    let user = record(state, who).await?;
    if !user.two_factor.enabled {
        return Err(Error::TwoFactorNotEnabled);
    }
    let guess = guesses::begin(state, &user, ip).await?;
    let verified = state
        .hasher
        .verify(password, Some(user.password_hash.clone()))
        .await?;
    if !verified.ok {
        guess.failed();
        tracing::info!(user_id = %user.id, session_id = %session_id, client = ip.map(tracing::field::display), "2FA disable: wrong password");
        return Err(Error::InvalidPassword);
    }
    let Some(used) = check_code(state, &user, code.expose()).await? else {
        guess.failed();
        tracing::info!(user_id = %user.id, session_id = %session_id, client = ip.map(tracing::field::display), "2FA disable: wrong code");
        return Err(Error::InvalidTotpConfirmation);
    };
    let event = audit::in_session(state, EventKind::TotpDisabled, who, client);
    match state
        .store
        .disable_totp(user.id.clone(), used, event)
        .await?
    {
        DisableOutcome::Disabled => {
            guess.succeeded();
            tracing::info!(user_id = %user.id, session_id = %session_id, client = ip.map(tracing::field::display), "two-factor authentication disabled");
            notices::send(state, &user.email, Notice::TwoFactorDisabled).await;
            Ok(())
        }
        DisableOutcome::NotEnabled => {
            guess.pending();
            Err(Error::TwoFactorNotEnabled)
        }
        DisableOutcome::CodeSpent => {
            guess.failed();
            Err(Error::InvalidTotpConfirmation)
        }
    }
}

/// What `code` would use up: a fresh TOTP step of the user's secret, or an unused backup code.
/// `None` for anything else. A backup-shaped code costs one hash; anything else none.
pub(crate) async fn check_code(
    state: &AppState,
    user: &Account,
    code: &str,
) -> Result<Option<SecondFactorUse>, Error> {
    let now = state.now();
    if let Some(secret) = &user.two_factor.secret {
        if let Some(step) =
            totp::matching_step(secret.expose(), code, now, user.two_factor.last_step)
        {
            return Ok(Some(SecondFactorUse::TotpStep {
                step,
                secret: secret.clone(),
            }));
        }
    }
    let (Some(canonical), Some(salt)) =
        (backup_codes::normalize(code), user.two_factor.backup_salt)
    else {
        return Ok(None);
    };
    let digests = state.hasher.backup_digests(vec![canonical], salt).await?;
    Ok(digests
        .into_iter()
        .next()
        .filter(|d| backup_codes::find(&user.two_factor.backup_codes, d).is_some())
        .map(|digest| SecondFactorUse::BackupCode { digest }))
}

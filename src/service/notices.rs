//! Security notices by mail: a short message to the account's address after something that
//! matters to its owner happened (the password changed, 2FA went on or off, an API key was made,
//! the account was deleted), so that an owner who did not do it finds out. No link in them: a
//! notice must not be a phishing template. Queued after the change is durable; a notice that
//! cannot be queued is logged, never a reason to undo what the user did.

use crate::domain::mail::OutgoingMail;
use crate::html::escape;
use crate::service::state::AppState;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The password was changed from a session.
    PasswordChanged,
    /// The password was reset with a mailed link.
    PasswordReset,
    /// Two-factor authentication was turned on.
    TwoFactorEnabled,
    /// Two-factor authentication was turned off.
    TwoFactorDisabled,
    /// An API key with this name was created.
    ApiKeyCreated(String),
    /// The account was deleted.
    AccountDeleted,
    /// A change of the account's email to another address was asked for.
    EmailChangeRequested,
}

impl Notice {
    fn subject_and_body(&self) -> (&'static str, String) {
        match self {
            Notice::PasswordChanged => (
                "your password was changed",
                "The password of your account was changed, and every other session was ended."
                    .into(),
            ),
            Notice::PasswordReset => (
                "your password was reset",
                "The password of your account was reset with a link sent to this address, and every session was ended."
                    .into(),
            ),
            Notice::TwoFactorEnabled => (
                "two-factor authentication is on",
                "Two-factor authentication was turned on for your account.".into(),
            ),
            Notice::TwoFactorDisabled => (
                "two-factor authentication is off",
                "Two-factor authentication was turned off for your account.".into(),
            ),
            Notice::ApiKeyCreated(name) => (
                "a new API key was created",
                format!("An API key named \"{name}\" was created for your account."),
            ),
            Notice::EmailChangeRequested => (
                "a change of your email address was asked for",
                "Someone with access to your account asked to move it to another email address. It changes only once the new address confirms."
                    .into(),
            ),
            Notice::AccountDeleted => (
                "your account was deleted",
                "Your account, its sessions and its API keys were deleted.".into(),
            ),
        }
    }
}

/// The message for `notice` to `to`, under `issuer`'s name.
pub fn message(issuer: &str, to: &str, notice: &Notice) -> OutgoingMail {
    let (subject, body) = notice.subject_and_body();
    let footer = "If this was not you, reset your password now and contact the operator.";
    OutgoingMail {
        to: to.to_string(),
        subject: format!("{issuer}: {subject}"),
        text: format!("{body}\n\n{footer}\n"),
        html: format!(
            "<!doctype html><p>{}</p><p>{}</p>",
            escape(&body),
            escape(footer)
        ),
    }
}

/// Queue `notice` for `to` when mail is delivered at all.
pub async fn send(state: &AppState, to: &str, notice: Notice) {
    if !state.mailer.enabled() {
        return;
    }
    let mail = message(&state.config.issuer, to, &notice);
    if let Err(e) = super::mail::queue(state, mail).await {
        tracing::error!(error = %e, "could not queue a security notice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_names_the_issuer_and_escapes_what_the_user_typed() {
        let m = message(
            "Cloudheed",
            "a@example.com",
            &Notice::ApiKeyCreated("<script>\"x\" & y".into()),
        );
        assert_eq!(m.subject, "Cloudheed: a new API key was created");
        assert!(m.text.contains("<script>"), "plain text as typed");
        assert!(
            m.html.contains("&lt;script&gt;&quot;x&quot; &amp; y"),
            "{}",
            m.html
        );
        assert!(!m.html.contains("<script>"));
        assert!(!m.text.contains("http"), "no link");
    }
}

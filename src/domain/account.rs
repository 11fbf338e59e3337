//! An account as the use cases see it — profile, password hash, operator state, two-factor
//! state — and the rules that change it: spending a second factor, enabling and clearing 2FA,
//! an operator's change. Pure: the store runs these inside its transactions, so a second
//! backend keeps the same rules by calling the same functions.

use crate::clock::UnixTime;
use crate::secret::{Secret, SecretBytes};

use super::models::User;

/// Everything known about one account.
#[derive(Debug, Clone)]
pub struct Account {
    /// `user-` + random.
    pub id: String,
    /// As registered (trimmed).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Optional company.
    pub company: Option<String>,
    /// Plan; only operators change it.
    pub plan: String,
    /// scrypt PHC string; hidden from `Debug`.
    pub password_hash: Secret,
    /// Creation time.
    pub created_at: UnixTime,
    /// When the email was verified, if ever.
    pub email_verified_at: Option<UnixTime>,
    /// Disabled by an operator.
    pub disabled: bool,
    /// Second-factor state.
    pub two_factor: TwoFactor,
    /// Client networks the account completed a login from, with when (see `domain::net`).
    pub login_networks: Vec<(String, UnixTime)>,
}

/// TOTP and backup codes of an account.
#[derive(Debug, Clone, Default)]
pub struct TwoFactor {
    /// Required at login.
    pub enabled: bool,
    /// The confirmed secret, while enabled. Kept recoverable: codes are computed from it.
    pub secret: Option<SecretBytes>,
    /// A secret from setup not yet confirmed by a code.
    pub pending: Option<SecretBytes>,
    /// The last TOTP step accepted; a step is accepted at most once.
    pub last_step: Option<i64>,
    /// Salt of the backup-code digests.
    pub backup_salt: Option<[u8; 16]>,
    /// scrypt digests of the backup codes, and whether each has been used.
    pub backup_codes: Vec<([u8; 32], bool)>,
}

/// What a login or 2FA disable spends of the second factor, as checked outside the transaction;
/// the transaction re-checks it against the account (`TwoFactor::spend`), so two requests with
/// one code cannot both win, and a code checked against a secret or code set since replaced is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactorUse {
    /// This TOTP step of this secret.
    TotpStep {
        /// The step.
        step: i64,
        /// The secret the code was checked against.
        secret: SecretBytes,
    },
    /// The unused backup code with this digest.
    BackupCode {
        /// scrypt digest of the code.
        digest: [u8; 32],
    },
}

/// Why enabling two-factor authentication changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableRefused {
    /// It is already on.
    AlreadyEnabled,
    /// The pending secret changed (a newer setup) since the code was checked.
    PendingChanged,
}

/// What an operator does to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// Refuse logins, tokens and keys; end every session.
    Disable,
    /// Undo `Disable`.
    Enable,
    /// Set the plan.
    SetPlan(String),
    /// Turn two-factor authentication off (a user who lost the authenticator and codes).
    ResetTwoFactor,
    /// Mark the email verified (at this time, unless it already was).
    VerifyEmail(UnixTime),
}

impl AccountChange {
    /// The audit event an operator's change is recorded as.
    pub fn event_kind(&self) -> crate::domain::audit::EventKind {
        use crate::domain::audit::EventKind;
        match self {
            AccountChange::Disable => EventKind::AccountDisabled,
            AccountChange::Enable => EventKind::AccountEnabled,
            AccountChange::SetPlan(_) => EventKind::PlanChanged,
            AccountChange::ResetTwoFactor => EventKind::TotpDisabled,
            AccountChange::VerifyEmail(_) => EventKind::EmailVerified,
        }
    }
}

impl Account {
    /// The profile handlers may show: never the hash or the second-factor secrets.
    pub fn profile(&self) -> User {
        User {
            id: self.id.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            company: self.company.clone(),
            plan: self.plan.clone(),
            two_factor_enabled: self.two_factor.enabled,
            email_verified_at: self.email_verified_at,
            created_at: self.created_at,
        }
    }

    /// Apply an operator's change; returns whether anything changed (an unchanged account need
    /// not be written). The caller ends the sessions of a disabled account.
    pub fn apply(&mut self, change: AccountChange) -> bool {
        match change {
            AccountChange::Disable => !std::mem::replace(&mut self.disabled, true),
            AccountChange::Enable => std::mem::replace(&mut self.disabled, false),
            AccountChange::SetPlan(plan) => std::mem::replace(&mut self.plan, plan) != self.plan,
            AccountChange::ResetTwoFactor => {
                let had = self.two_factor.enabled || self.two_factor.pending.is_some();
                self.two_factor.clear();
                had
            }
            AccountChange::VerifyEmail(now) => {
                let unset = self.email_verified_at.is_none();
                self.email_verified_at.get_or_insert(now);
                unset
            }
        }
    }
}

impl From<&Account> for User {
    fn from(a: &Account) -> Self {
        a.profile()
    }
}

/// Whether a change that the second factor guards may go ahead, given the factor it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorGate {
    /// Two-factor is off, or the factor was good and is now spent.
    Pass,
    /// Two-factor is on (it may have gone on since the request read the account) and none came.
    Required,
    /// The factor was used meanwhile by another request (or replaced).
    Spent,
}

impl TwoFactor {
    /// Spend `used` for a change this factor guards, inside the change's transaction: a code
    /// checked before may have been used by a racing request, and two-factor may have gone on
    /// since the account was read.
    pub fn gate(&mut self, used: Option<&SecondFactorUse>) -> FactorGate {
        match used {
            None if self.enabled => FactorGate::Required,
            Some(u) if !self.spend(u) => FactorGate::Spent,
            _ => FactorGate::Pass,
        }
    }

    /// Mark `used` as spent; false if it no longer can be (replayed, used, or replaced).
    pub fn spend(&mut self, used: &SecondFactorUse) -> bool {
        match used {
            SecondFactorUse::TotpStep { step, secret } => {
                let same_secret = self.secret.as_ref() == Some(secret);
                let fresh = self.last_step.is_none_or(|last| *step > last);
                if same_secret && fresh {
                    self.last_step = Some(*step);
                }
                same_secret && fresh
            }
            SecondFactorUse::BackupCode { digest } => {
                match self
                    .backup_codes
                    .iter_mut()
                    .find(|(d, used)| d == digest && !*used)
                {
                    Some((_, used)) => {
                        *used = true;
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// Turn it on with the pending secret that a code of `step` confirmed, and these backup
    /// code digests.
    pub fn enable(
        &mut self,
        confirmed: &SecretBytes,
        step: i64,
        backup_salt: [u8; 16],
        backup_digests: Vec<[u8; 32]>,
    ) -> Result<(), EnableRefused> {
        if self.enabled {
            return Err(EnableRefused::AlreadyEnabled);
        }
        if self.pending.as_ref() != Some(confirmed) {
            return Err(EnableRefused::PendingChanged);
        }
        self.enabled = true;
        self.secret = self.pending.take();
        self.last_step = Some(step);
        self.backup_salt = Some(backup_salt);
        self.backup_codes = backup_digests.into_iter().map(|d| (d, false)).collect();
        Ok(())
    }

    /// Off, with its secret, pending secret and backup codes forgotten.
    pub fn clear(&mut self) {
        *self = TwoFactor::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(b: u8) -> SecretBytes {
        SecretBytes::new(vec![b; 20])
    }

    fn on() -> TwoFactor {
        let mut t = TwoFactor {
            pending: Some(secret(1)),
            ..TwoFactor::default()
        };
        t.enable(&secret(1), 100, [0; 16], vec![[7; 32], [8; 32]])
            .expect("enable");
        t
    }

    #[test]
    fn the_second_factor_gate_passes_requires_or_refuses_a_spent_factor() {
        let mut off = TwoFactor::default();
        assert_eq!(off.gate(None), FactorGate::Pass);
        let mut on = TwoFactor {
            enabled: true,
            ..TwoFactor::default()
        };
        assert_eq!(on.gate(None), FactorGate::Required);
        let unknown = SecondFactorUse::BackupCode { digest: [7; 32] };
        assert_eq!(on.gate(Some(&unknown)), FactorGate::Spent);
    }

    #[test]
    fn a_totp_step_is_spent_once_and_only_for_the_current_secret() {
        let mut t = on();
        let step = |s| SecondFactorUse::TotpStep {
            step: s,
            secret: secret(1),
        };
        assert!(!t.spend(&step(100)), "the step that enabled it");
        assert!(t.spend(&step(101)));
        assert!(!t.spend(&step(101)), "replayed");
        assert!(!t.spend(&step(100)), "older");
        let other = SecondFactorUse::TotpStep {
            step: 105,
            secret: secret(2),
        };
        assert!(!t.spend(&other), "a replaced secret");
    }

    #[test]
    fn a_backup_code_is_spent_once() {
        let mut t = on();
        let code = SecondFactorUse::BackupCode { digest: [7; 32] };
        assert!(t.spend(&code));
        assert!(!t.spend(&code));
        assert!(!t.spend(&SecondFactorUse::BackupCode { digest: [9; 32] }));
    }

    #[test]
    fn enabling_needs_the_pending_secret_that_was_checked() {
        let mut t = TwoFactor {
            pending: Some(secret(2)),
            ..TwoFactor::default()
        };
        assert_eq!(
            t.enable(&secret(1), 1, [0; 16], vec![]),
            Err(EnableRefused::PendingChanged)
        );
        assert!(t.enable(&secret(2), 1, [0; 16], vec![]).is_ok());
        assert_eq!(
            t.enable(&secret(2), 2, [0; 16], vec![]),
            Err(EnableRefused::AlreadyEnabled)
        );
        t.clear();
        assert!(!t.enabled && t.secret.is_none() && t.backup_codes.is_empty());
    }

    #[test]
    fn an_operator_change_says_whether_it_changed_anything() {
        let mut a = Account {
            id: "user-1".into(),
            email: "a@example.com".into(),
            name: "A".into(),
            company: None,
            plan: "free".into(),
            password_hash: Secret::new(String::new()),
            created_at: 1,
            email_verified_at: None,
            disabled: false,
            two_factor: on(),
            login_networks: Vec::new(),
        };
        assert!(a.apply(AccountChange::Disable));
        assert!(!a.apply(AccountChange::Disable), "already disabled");
        assert!(a.apply(AccountChange::Enable));
        assert!(!a.apply(AccountChange::SetPlan("free".into())));
        assert!(a.apply(AccountChange::SetPlan("pro".into())));
        assert!(a.apply(AccountChange::VerifyEmail(5)));
        assert!(
            !a.apply(AccountChange::VerifyEmail(9)),
            "kept the first time"
        );
        assert_eq!(a.email_verified_at, Some(5));
        assert!(a.apply(AccountChange::ResetTwoFactor));
        assert!(!a.apply(AccountChange::ResetTwoFactor));
        assert!(!a.profile().two_factor_enabled);
    }
}

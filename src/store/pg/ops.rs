//! The use-case operations on PostgreSQL: each one transaction (writes under the schema's write
//! lock), the domain's rules applied inside it exactly as the redb store applies them.

use std::io::{BufRead, Write};
use std::sync::Arc;

use data_encoding::{BASE64, HEXLOWER};

use crate::clock::UnixTime;
use crate::crypto::keys::KeyPair;
use crate::crypto::random::{self, sha256};
use crate::domain::account::{Account, AccountChange, EnableRefused, FactorGate, SecondFactorUse};
use crate::domain::audit::{Entry, Event, EventKind};
use crate::domain::lineage::Presented;
use crate::domain::mail::{AfterFailure, OutgoingMail, QueuedMail, TokenKind};
use crate::domain::models::{ApiKey, Session};
use crate::secret::{Secret, SecretBytes};

use super::super::audit::{anchor_of, relinked, tampered, to_entry, with_factor, Walker};
use super::super::export::{hex32, line, read_lines, Line, FORMAT, VERSION};
use super::super::keys::{in_use, stored};
use super::super::records::{
    decode, decode_user, encode, ApiKeyRecord, AuditAnchorRecord, AuditRecord, MailTokenRecord,
    OutboxRecord, SessionRecord, SigningKeyRecord, UserRecord, RECORD_VERSION,
};
use super::super::{
    newest_first, AuditQuery, AuditWalk, Confirmed, CreateOutcome, DeleteBy, DeleteOutcome,
    DisableOutcome, EmailChange, EnableOutcome, KeyCreateOutcome, MailTokenReset,
    MailTokenVerified, Moved, NewMailToken, NewSession, NewUser, Rotation, SetupOutcome,
    StartOutcome, StoreError, StoredKey, Tamper,
};
use super::rows::*;
use super::{write_tx, PgStore};

/// How long a claimed message is kept from other instances' delivery workers.
const MAIL_LEASE_SECS: i64 = 120;

/// Every signing key (oldest first), after deleting the retired ones older than `keep_for`.
async fn load_keys(
    c: &impl tokio_postgres::GenericClient,
    now: UnixTime,
    keep_for: i64,
) -> Result<Vec<SigningKeyRecord>, StoreError> {
    let mut records = Vec::new();
    for row in c.query("SELECT kid, record FROM signing_keys", &[]).await? {
        let kid: String = row.get(0);
        let r: SigningKeyRecord = decode("signing_keys", row.get::<_, &[u8]>(1))?;
        if in_use(&r, now, keep_for) {
            records.push(r);
        } else {
            c.execute("DELETE FROM signing_keys WHERE kid = $1", &[&kid])
                .await?;
        }
    }
    records.sort_by_key(|r| r.created_at);
    Ok(records)
}

async fn put_signing_key(
    c: &impl tokio_postgres::GenericClient,
    r: &SigningKeyRecord,
) -> Result<(), StoreError> {
    let kid = KeyPair::from_seed(&r.seed).kid().to_string();
    c.execute(
        "INSERT INTO signing_keys (kid, record) VALUES ($1, $2)
         ON CONFLICT (kid) DO UPDATE SET record = EXCLUDED.record",
        &[&kid, &encode(r)?],
    )
    .await?;
    Ok(())
}

async fn new_signing_key(
    c: &impl tokio_postgres::GenericClient,
    now: UnixTime,
) -> Result<SigningKeyRecord, StoreError> {
    let key = KeyPair::generate();
    let record = SigningKeyRecord {
        v: RECORD_VERSION,
        seed: *key.seed(),
        created_at: now,
        retired_at: None,
    };
    put_signing_key(c, &record).await?;
    Ok(record)
}

impl PgStore {
    /// The end of a use case's write: its events appended, the commit, and this instance's
    /// cached reads of `user` made stale.
    async fn commit_with(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
        events: &[Event],
        user: Option<&str>,
    ) -> Result<(), StoreError> {
        append(&*tx, events).await?;
        tx.commit().await?;
        if let Some(user) = user {
            self.touched(&[user]);
        }
        Ok(())
    }

    // === accounts ===

    /// Whether an account uses this (lowercased) email.
    pub async fn email_taken(&self, email_key: String) -> Result<bool, StoreError> {
        let c = self.client().await?;
        Ok(
            c.query_opt("SELECT 1 FROM users WHERE email_key = $1", &[&email_key])
                .await?
                .is_some(),
        )
    }

    /// The account with this (lowercased) email.
    pub async fn user_by_email(&self, email_key: String) -> Result<Option<Account>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT record FROM users WHERE email_key = $1",
                &[&email_key],
            )
            .await?;
        row.map(|r| decode_user(r.get::<_, &[u8]>(0))).transpose()
    }

    /// The whole account.
    pub async fn user_by_id(&self, user_id: String) -> Result<Option<Account>, StoreError> {
        let c = self.client().await?;
        find_user(&**c, &user_id).await
    }

    /// Create an account and its first session; the email's uniqueness is decided here.
    pub async fn create_account(
        &self,
        user: NewUser,
        session: NewSession,
        events: Vec<Event>,
    ) -> Result<CreateOutcome, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        if tx
            .query_opt(
                "SELECT 1 FROM users WHERE email_key = $1",
                &[&user.email_key],
            )
            .await?
            .is_some()
        {
            return Ok(CreateOutcome::EmailTaken);
        }
        put_user(&*tx, &user.into_account()).await?;
        insert_session(&*tx, session).await?;
        self.commit_with(tx, &events, None).await?;
        Ok(CreateOutcome::Created)
    }

    /// Open a session after a login, with what the login used up (see the redb store).
    pub async fn start_session(
        &self,
        session: NewSession,
        rehash: Option<Secret>,
        second_factor: Option<SecondFactorUse>,
        event: Event,
    ) -> Result<StartOutcome, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let mut user = get_user(&*tx, &session.user_id).await?;
        if user.disabled {
            return Ok(StartOutcome::Disabled);
        }
        match user.two_factor.gate(second_factor.as_ref()) {
            FactorGate::Pass => {}
            FactorGate::Required => return Ok(StartOutcome::TotpRequired),
            FactorGate::Spent => return Ok(StartOutcome::SecondFactorSpent),
        }
        if let Some(hash) = rehash {
            user.password_hash = hash;
        }
        if let Some(network) = &session.network {
            crate::domain::net::note_login_network(
                &mut user.login_networks,
                network.clone(),
                session.now,
            );
        }
        put_user(&*tx, &user).await?;
        insert_session(&*tx, session).await?;
        self.commit_with(
            tx,
            &with_factor(event, second_factor.as_ref()),
            Some(&user.id),
        )
        .await?;
        Ok(StartOutcome::Started)
    }

    /// Replace the password hash and end every session of the user but `keep_session`.
    pub async fn change_password(
        &self,
        user_id: String,
        new_hash: Secret,
        keep_session: String,
        event: Event,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let mut user = get_user(&*tx, &user_id).await?;
        user.password_hash = new_hash;
        put_user(&*tx, &user).await?;
        delete_sessions_where(&*tx, &user_id, |s| s.id != keep_session).await?;
        self.commit_with(tx, &[event], Some(&user_id)).await?;
        Ok(())
    }

    /// Delete the account and everything of it in one transaction.
    pub async fn delete_account(
        &self,
        user_id: String,
        by: DeleteBy,
        event: Event,
    ) -> Result<DeleteOutcome, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let mut user = get_user(&*tx, &user_id).await?;
        if let DeleteBy::User(used) = &by {
            match user.two_factor.gate(used.as_ref()) {
                FactorGate::Pass => {}
                FactorGate::Required => return Ok(DeleteOutcome::TotpRequired),
                FactorGate::Spent => return Ok(DeleteOutcome::SecondFactorSpent),
            }
        }
        delete_sessions_where(&*tx, &user_id, |_| true).await?;
        tx.execute("DELETE FROM api_keys WHERE user_id = $1", &[&user_id])
            .await?;
        delete_user(&*tx, &user_id).await?;
        let used = match &by {
            DeleteBy::User(used) => used.as_ref(),
            DeleteBy::Operator => None,
        };
        let event = event.user(&user_id).detail("email", user.email);
        self.commit_with(tx, &with_factor(event, used), Some(&user_id))
            .await?;
        Ok(DeleteOutcome::Deleted)
    }

    /// Every account, oldest first.
    pub async fn list_users(&self) -> Result<Vec<Account>, StoreError> {
        let c = self.client().await?;
        let mut out: Vec<Account> = c
            .query("SELECT record FROM users", &[])
            .await?
            .iter()
            .map(|r| decode_user(r.get::<_, &[u8]>(0)))
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.email.cmp(&b.email))
        });
        Ok(out)
    }

    /// Apply an operator's change; a disabled account's sessions end with it.
    pub async fn change_user(
        &self,
        user_id: String,
        change: AccountChange,
        event: Event,
    ) -> Result<Account, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let mut user = get_user(&*tx, &user_id).await?;
        let disable = change == AccountChange::Disable;
        let plan_before = user.plan.clone();
        if !user.apply(change) {
            return Ok(user);
        }
        if disable {
            delete_sessions_where(&*tx, &user_id, |_| true).await?;
        }
        put_user(&*tx, &user).await?;
        let event = match event.kind {
            EventKind::PlanChanged => event
                .detail("from", plan_before)
                .detail("to", user.plan.as_str()),
            _ => event,
        };
        self.commit_with(tx, &[event.user(&user_id)], Some(&user_id))
            .await?;
        Ok(user)
    }

    // === two-factor ===

    /// Keep `secret` as the user's unconfirmed TOTP secret.
    pub async fn set_pending_totp(
        &self,
        user_id: String,
        secret: SecretBytes,
        event: Event,
    ) -> Result<SetupOutcome, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let mut user = get_user(&*tx, &user_id).await?;
        if user.two_factor.enabled {
            return Ok(SetupOutcome::AlreadyEnabled);
        }
        user.two_factor.pending = Some(secret);
        put_user(&*tx, &user).await?;
        self.commit_with(tx, &[event], Some(&user_id)).await?;
        Ok(SetupOutcome::Pending)
    }

    /// Turn two-factor authentication on (see the redb store).
    pub async fn enable_totp(
        &self,
        user_id: String,
        confirmed: Confirmed,
        keep_session: String,
        event: Event,
    ) -> Result<EnableOutcome, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let mut user = get_user(&*tx, &user_id).await?;
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
            Err(EnableRefused::AlreadyEnabled) => return Ok(EnableOutcome::AlreadyEnabled),
            Err(EnableRefused::PendingChanged) => return Ok(EnableOutcome::PendingChanged),
            Ok(()) => {}
        }
        put_user(&*tx, &user).await?;
        delete_sessions_where(&*tx, &user_id, |s| s.id != keep_session).await?;
        self.commit_with(tx, &[event], Some(&user_id)).await?;
        Ok(EnableOutcome::Enabled)
    }

    /// Turn two-factor authentication off, spending the code that confirmed it.
    pub async fn disable_totp(
        &self,
        user_id: String,
        used: SecondFactorUse,
        event: Event,
    ) -> Result<DisableOutcome, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let mut user = get_user(&*tx, &user_id).await?;
        if !user.two_factor.enabled {
            return Ok(DisableOutcome::NotEnabled);
        }
        if !user.two_factor.spend(&used) {
            return Ok(DisableOutcome::CodeSpent);
        }
        user.two_factor.clear();
        put_user(&*tx, &user).await?;
        self.commit_with(tx, &with_factor(event, Some(&used)), Some(&user_id))
            .await?;
        Ok(DisableOutcome::Disabled)
    }

    // === sessions ===

    /// A live session together with its user: the read behind every bearer check.
    pub async fn session_with_user(
        &self,
        session_id: String,
        now: UnixTime,
    ) -> Result<Option<Arc<(Session, Account)>>, StoreError> {
        if let Some(hit) = self.cache.session(&session_id, now) {
            return Ok(Some(hit));
        }
        let before = self.cache.before();
        let c = self.client().await?;
        let Some(s) = get_session(&**c, &session_id).await? else {
            return Ok(None);
        };
        if now >= s.expires_at {
            return Ok(None);
        }
        let Some(user) = find_user(&**c, &s.user_id).await? else {
            return Err(StoreError::Corrupt(format!(
                "session {} of missing user",
                s.id
            )));
        };
        let read = Some((Session::from(&s), user));
        Ok(self.cache.keep_session(&session_id, read, before))
    }

    /// Whether a refresh-token hash is known at all.
    pub async fn refresh_token_known(&self, hash: [u8; 32]) -> Result<bool, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT 1 FROM refresh_tokens WHERE hash = $1",
            &[&hash.as_slice()],
        )
        .await?
        .is_some())
    }

    /// Present a refresh token and, if it is live, replace it with `new_hash` (see the redb
    /// store): serialized with every other write, so of two instances rotating one token at
    /// once exactly one succeeds.
    pub async fn rotate_refresh(
        &self,
        presented: [u8; 32],
        new_hash: [u8; 32],
        now: UnixTime,
        grace_secs: i64,
        on_reuse: Event,
    ) -> Result<Rotation, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let Some(row) = tx
            .query_opt(
                "SELECT session_id FROM refresh_tokens WHERE hash = $1",
                &[&presented.as_slice()],
            )
            .await?
        else {
            return Ok(Rotation::Unknown);
        };
        let session_id: String = row.get(0);
        let Some(mut s) = get_session(&*tx, &session_id).await? else {
            return Err(StoreError::Corrupt(format!(
                "refresh token of missing session {session_id}"
            )));
        };
        if now >= s.expires_at || get_user(&*tx, &s.user_id).await?.disabled {
            delete_session(&*tx, &s).await?;
            tx.commit().await?;
            self.touched(&[&s.user_id]);
            return Ok(Rotation::Unknown);
        }
        let mut lineage = s.lineage();
        match lineage.present(&presented, now, grace_secs) {
            Presented::Live => {}
            Presented::WithinGrace => return Ok(Rotation::WithinGrace { session_id }),
            Presented::Reused => {
                delete_session(&*tx, &s).await?;
                let (session_id, user_id) = (s.id, s.user_id);
                self.commit_with(
                    tx,
                    &[on_reuse.user(&user_id).session(&session_id)],
                    Some(&user_id),
                )
                .await?;
                return Ok(Rotation::Reused {
                    session_id,
                    user_id,
                });
            }
        }
        if let Some(forgotten) = lineage.rotate(new_hash, now) {
            tx.execute(
                "DELETE FROM refresh_tokens WHERE hash = $1",
                &[&forgotten.as_slice()],
            )
            .await?;
        }
        s.set_lineage(lineage);
        s.last_used_at = now;
        tx.execute(
            "INSERT INTO refresh_tokens (hash, session_id) VALUES ($1, $2)",
            &[&new_hash.as_slice(), &s.id],
        )
        .await?;
        put_session(&*tx, &s).await?;
        tx.commit().await?;
        Ok(Rotation::Rotated(Session::from(&s)))
    }

    /// Keep the successor of a rotated-out token, sealed so that only its holder can open it,
    /// until `expires_at`: another instance answers that token's re-presentation within the
    /// grace with the very same pair.
    pub async fn remember_grace(
        &self,
        presented: [u8; 32],
        sealed: Vec<u8>,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("DELETE FROM refresh_grace WHERE expires_at <= $1", &[&now])
            .await?;
        c.execute(
            "INSERT INTO refresh_grace (hash, sealed, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (hash) DO UPDATE SET sealed = EXCLUDED.sealed, expires_at = EXCLUDED.expires_at",
            &[&presented.as_slice(), &sealed, &expires_at],
        )
        .await?;
        Ok(())
    }

    /// The sealed successor of a rotated-out token, while its grace lasts.
    pub async fn grace_successor(
        &self,
        presented: [u8; 32],
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT sealed FROM refresh_grace WHERE hash = $1 AND expires_at > $2",
            &[&presented.as_slice(), &now],
        )
        .await?
        .map(|r| r.get(0)))
    }

    /// Update the limit state under `key` that every instance shares (an account's run of
    /// failed guesses, a client's bucket) with `f`, under a row lock: guesses spread over the
    /// instances count together. A handful of statements whatever the load; state untouched
    /// for a day is forgotten.
    pub async fn update_shared<R>(
        &self,
        key: String,
        now: UnixTime,
        f: impl FnOnce(Option<&[u8]>) -> (Vec<u8>, R),
    ) -> Result<R, StoreError> {
        const KEEP: i64 = 86_400;
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO shared_limits (key, state, expires_at) VALUES ($1, NULL, $2)
             ON CONFLICT (key) DO NOTHING",
            &[&key, &(now + KEEP)],
        )
        .await?;
        let current: Option<Vec<u8>> = tx
            .query_one(
                "SELECT state FROM shared_limits WHERE key = $1 FOR UPDATE",
                &[&key],
            )
            .await?
            .get(0);
        let (next, out) = f(current.as_deref());
        tx.execute(
            "UPDATE shared_limits SET state = $2, expires_at = $3 WHERE key = $1",
            &[&key, &next, &(now + KEEP)],
        )
        .await?;
        tx.commit().await?;
        if random::bytes::<1>()[0] == 0 {
            c.execute("DELETE FROM shared_limits WHERE expires_at < $1", &[&now])
                .await?;
        }
        Ok(out)
    }

    /// The shared limit state under `key`, if any.
    pub async fn read_shared(&self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.client().await?;
        Ok(
            c.query_opt("SELECT state FROM shared_limits WHERE key = $1", &[&key])
                .await?
                .and_then(|r| r.get(0)),
        )
    }

    /// End a session if it belongs to `user_id`, recording `event`.
    pub async fn revoke_session(
        &self,
        user_id: String,
        session_id: String,
        event: Event,
    ) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        match get_session(&*tx, &session_id).await? {
            Some(s) if s.user_id == user_id => {
                delete_session(&*tx, &s).await?;
                self.commit_with(tx, &[event], Some(&user_id)).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// A user's live sessions, newest first.
    pub async fn list_sessions(
        &self,
        user_id: String,
        now: UnixTime,
    ) -> Result<Vec<Session>, StoreError> {
        let c = self.client().await?;
        let live: Vec<Session> = sessions_of(&**c, &user_id)
            .await?
            .iter()
            .filter(|s| now < s.expires_at)
            .map(Session::from)
            .collect();
        Ok(newest_first(live, |s| (s.created_at, s.id.clone())))
    }

    // === API keys ===

    /// Create `key` unless the user already holds `max_per_user` live ones.
    pub async fn create_api_key(
        &self,
        key: ApiKey,
        max_per_user: usize,
        event: Event,
    ) -> Result<KeyCreateOutcome, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let existing = keys_of(&*tx, &key.user_id).await?;
        let seq = existing.iter().map(|k| k.seq).max().map_or(0, |s| s + 1);
        let shown: Vec<ApiKey> = existing.iter().map(ApiKey::from).collect();
        let (expired, fits) = ApiKey::room_for_one_more(&shown, key.created_at, max_per_user);
        for i in &expired {
            delete_key(&*tx, &existing[*i]).await?;
        }
        if !fits {
            tx.commit().await?;
            self.touched(&[&key.user_id]);
            return Ok(KeyCreateOutcome::LimitReached);
        }
        let record = ApiKeyRecord::new(key, seq);
        put_key(&*tx, &record).await?;
        self.commit_with(tx, &[event], Some(&record.user_id))
            .await?;
        Ok(KeyCreateOutcome::Created)
    }

    /// A user's live keys, newest first.
    pub async fn list_api_keys(
        &self,
        user_id: String,
        now: UnixTime,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let c = self.client().await?;
        let all = keys_of(&**c, &user_id).await?;
        let live: Vec<&ApiKeyRecord> = all.iter().filter(|k| now < k.expires_at).collect();
        let sorted = newest_first(live, |k| (k.created_at, k.seq, k.id.clone()));
        Ok(sorted.into_iter().map(ApiKey::from).collect())
    }

    /// Delete a key if it belongs to `user_id`.
    pub async fn revoke_api_key(
        &self,
        user_id: String,
        key_id: String,
        event: Event,
    ) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let row = tx
            .query_opt("SELECT record FROM api_keys WHERE id = $1", &[&key_id])
            .await?;
        let record: Option<ApiKeyRecord> = row
            .map(|r| decode("api_keys", r.get::<_, &[u8]>(0)))
            .transpose()?;
        match record {
            Some(k) if k.user_id == user_id => {
                delete_key(&*tx, &k).await?;
                self.commit_with(tx, &[event], Some(&user_id)).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The live key with this hash, and its owner.
    pub async fn api_key_with_user(
        &self,
        hash: [u8; 32],
        now: UnixTime,
    ) -> Result<Option<Arc<(ApiKey, Account)>>, StoreError> {
        if let Some(hit) = self.cache.key(&hash, now) {
            return Ok(Some(hit));
        }
        let before = self.cache.before();
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT record FROM api_keys WHERE hash = $1",
                &[&hash.as_slice()],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let k: ApiKeyRecord = decode("api_keys", row.get::<_, &[u8]>(0))?;
        if !random::ct_eq(&k.hash, &hash) || now >= k.expires_at {
            return Ok(None);
        }
        let Some(user) = find_user(&**c, &k.user_id).await? else {
            return Err(StoreError::Corrupt(format!(
                "api key {} of missing user",
                k.id
            )));
        };
        Ok(self
            .cache
            .keep_key(hash, Some((ApiKey::from(&k), user)), before))
    }

    /// Record when keys were last used; keys deleted meanwhile are skipped.
    pub async fn record_api_key_use(
        &self,
        uses: Vec<([u8; 32], UnixTime)>,
    ) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        for (hash, at) in uses {
            let row = tx
                .query_opt(
                    "SELECT record FROM api_keys WHERE hash = $1",
                    &[&hash.as_slice()],
                )
                .await?;
            if let Some(row) = row {
                let mut k: ApiKeyRecord = decode("api_keys", row.get::<_, &[u8]>(0))?;
                if k.last_used_at.is_none_or(|t| t < at) {
                    k.last_used_at = Some(at);
                    put_key(&*tx, &k).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    // === signing keys ===

    /// The signing keys still in use, oldest first, read without writing anything (what other
    /// instances reload the keyring from).
    pub async fn signing_keys(
        &self,
        now: UnixTime,
        keep_for: i64,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let c = self.client().await?;
        let mut records = Vec::new();
        for row in c.query("SELECT record FROM signing_keys", &[]).await? {
            let r: SigningKeyRecord = decode("signing_keys", row.get::<_, &[u8]>(0))?;
            if in_use(&r, now, keep_for) {
                records.push(r);
            }
        }
        records.sort_by_key(|r| r.created_at);
        Ok(stored(records))
    }

    /// Every signing key still in use, oldest first; on first start, one is created.
    pub async fn signing_keys_or_create(
        &self,
        now: UnixTime,
        keep_for: i64,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let mut records = load_keys(&*tx, now, keep_for).await?;
        if records.iter().all(|r| r.retired_at.is_some()) {
            let created = new_signing_key(&*tx, now).await?;
            tracing::info!(kid = %KeyPair::from_seed(&created.seed).kid(), "created a signing key");
            records.push(created);
        }
        tx.commit().await?;
        Ok(stored(records))
    }

    /// Retire the signing key(s) in use and create a new one.
    pub async fn rotate_signing_key(
        &self,
        now: UnixTime,
        keep_for: i64,
        event: Event,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let mut records = load_keys(&*tx, now, keep_for).await?;
        for r in records.iter_mut().filter(|r| r.retired_at.is_none()) {
            r.retired_at = Some(now);
            put_signing_key(&*tx, r).await?;
        }
        let new = new_signing_key(&*tx, now).await?;
        let kid = KeyPair::from_seed(&new.seed).kid().to_string();
        records.push(new);
        self.commit_with(tx, &[event.detail("kid", kid)], None)
            .await?;
        Ok(stored(records))
    }

    // === mail tokens ===

    /// Store the token and queue its mail, voiding the user's previous token of its kind.
    pub async fn issue_mail_token(&self, t: NewMailToken, now: UnixTime) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let record = MailTokenRecord {
            v: RECORD_VERSION,
            kind: t.kind.as_str().to_string(),
            user_id: t.user_id.clone(),
            email: t.email.clone(),
            expires_at: t.expires_at,
        };
        put_mail_token(&*tx, &t.hash, &record, t.kind).await?;
        if let Some(mail) = &t.mail {
            queue_mail(&*tx, mail, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Use a verification token.
    pub async fn verify_email_with(
        &self,
        hash: [u8; 32],
        now: UnixTime,
        event: Event,
    ) -> Result<MailTokenVerified, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let Some(token) = take_token(&*tx, &hash, TokenKind::Verify, now).await? else {
            tx.commit().await?;
            return Ok(MailTokenVerified::Invalid);
        };
        let mut user = get_user(&*tx, &token.user_id).await?;
        if !user.email.eq_ignore_ascii_case(&token.email) {
            tx.commit().await?;
            return Ok(MailTokenVerified::Invalid);
        }
        if user.email_verified_at.is_none() {
            user.email_verified_at = Some(now);
            put_user(&*tx, &user).await?;
            append(&*tx, &[event.user(&user.id)]).await?;
        }
        tx.commit().await?;
        self.touched(&[&user.id]);
        Ok(MailTokenVerified::Done(user.id))
    }

    /// The account a live reset token belongs to, without using the token.
    pub async fn reset_token_account(
        &self,
        hash: [u8; 32],
        now: UnixTime,
    ) -> Result<Option<Account>, StoreError> {
        let c = self.client().await?;
        let Some(token) = peek_token(&**c, &hash, TokenKind::Reset, now).await? else {
            return Ok(None);
        };
        find_user(&**c, &token.user_id).await
    }

    /// Use a reset token (see the redb store).
    pub async fn reset_password_with(
        &self,
        hash: [u8; 32],
        new_hash: Secret,
        used: Option<SecondFactorUse>,
        now: UnixTime,
        event: Event,
    ) -> Result<MailTokenReset, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let Some(token) = peek_token(&*tx, &hash, TokenKind::Reset, now).await? else {
            return Ok(MailTokenReset::Invalid);
        };
        let mut user = get_user(&*tx, &token.user_id).await?;
        match user.two_factor.gate(used.as_ref()) {
            FactorGate::Pass => {}
            FactorGate::Required => return Ok(MailTokenReset::TotpRequired),
            FactorGate::Spent => return Ok(MailTokenReset::SecondFactorSpent),
        }
        take_token(&*tx, &hash, TokenKind::Reset, now).await?;
        user.password_hash = new_hash;
        user.email_verified_at.get_or_insert(now);
        put_user(&*tx, &user).await?;
        delete_sessions_where(&*tx, &user.id, |_| true).await?;
        self.commit_with(
            tx,
            &with_factor(event.user(&user.id), used.as_ref()),
            Some(&user.id),
        )
        .await?;
        Ok(MailTokenReset::Done(Box::new(user)))
    }

    /// Use an email-change token; 409 when the address was taken meanwhile.
    pub async fn change_email_with(
        &self,
        hash: [u8; 32],
        now: UnixTime,
        event: Event,
    ) -> Result<EmailChange, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let Some(token) = take_token(&*tx, &hash, TokenKind::Change, now).await? else {
            tx.commit().await?;
            return Ok(EmailChange::Invalid);
        };
        let mut user = get_user(&*tx, &token.user_id).await?;
        let new_key = token.email.to_ascii_lowercase();
        let owner: Option<String> = tx
            .query_opt("SELECT id FROM users WHERE email_key = $1", &[&new_key])
            .await?
            .map(|r| r.get(0));
        if owner.is_some_and(|id| id != user.id) {
            tx.commit().await?;
            return Ok(EmailChange::Taken);
        }
        let old = std::mem::replace(&mut user.email, token.email.clone());
        user.email_verified_at = Some(now);
        put_user(&*tx, &user).await?;
        let event = event
            .user(&user.id)
            .detail("from", old.as_str())
            .detail("to", token.email.as_str());
        self.commit_with(tx, &[event], Some(&user.id)).await?;
        Ok(EmailChange::Done(user.id, old, token.email))
    }

    // === the outbox ===

    /// Queue one message on its own; its id.
    pub async fn queue_mail(
        &self,
        mail: OutgoingMail,
        now: UnixTime,
    ) -> Result<String, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let id = queue_mail(&*tx, &mail, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Up to `limit` messages due at `now`, claimed for this instance for a while, so that
    /// several instances' delivery workers never send one message twice at once.
    pub async fn due_mail(
        &self,
        now: UnixTime,
        limit: usize,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let rows = tx
            .query(
                "SELECT record FROM outbox WHERE next_attempt_at <= $1
                 ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&now, &(limit as i64)],
            )
            .await?;
        let mut due = Vec::new();
        for row in rows {
            let r: OutboxRecord = decode("outbox", row.get::<_, &[u8]>(0))?;
            let queued = QueuedMail::from(r);
            tx.execute(
                "UPDATE outbox SET next_attempt_at = $2 WHERE id = $1",
                &[&queued.id, &(now + MAIL_LEASE_SECS)],
            )
            .await?;
            due.push(queued);
        }
        tx.commit().await?;
        due.sort_by(|a, b| {
            (a.next_attempt_at, a.created_at, &a.id).cmp(&(b.next_attempt_at, b.created_at, &b.id))
        });
        Ok(due)
    }

    /// The message was handed over: forget it.
    pub async fn mail_sent(&self, id: String) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("DELETE FROM outbox WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    /// A delivery failed: schedule the next try, or drop the message after `max_attempts`.
    pub async fn mail_failed(
        &self,
        id: String,
        now: UnixTime,
        max_attempts: u32,
    ) -> Result<Option<AfterFailure>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let row = tx
            .query_opt("SELECT record FROM outbox WHERE id = $1 FOR UPDATE", &[&id])
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut queued =
            QueuedMail::from(decode::<OutboxRecord>("outbox", row.get::<_, &[u8]>(0))?);
        let after = queued.failed(now, max_attempts);
        match after {
            AfterFailure::GiveUp => {
                tx.execute("DELETE FROM outbox WHERE id = $1", &[&id])
                    .await?;
            }
            AfterFailure::RetryAt(_) => put_mail(&*tx, &queued).await?,
        }
        tx.commit().await?;
        Ok(Some(after))
    }

    /// Messages waiting.
    pub async fn queued_mail_count(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let n: i64 = c
            .query_one("SELECT count(*) FROM outbox", &[])
            .await?
            .get(0);
        Ok(n as u64)
    }

    // === the audit log ===

    /// Events that go with no other change.
    pub async fn record_events(&self, events: Vec<Event>) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        self.commit_with(tx, &events, None).await?;
        Ok(())
    }

    /// A user's events, newest first, below `before`; at most `limit`, and whether there are
    /// more.
    pub async fn activity(
        &self,
        user_id: String,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Entry>, bool), StoreError> {
        let c = self.client().await?;
        let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let rows = c
            .query(
                "SELECT seq, record FROM audit WHERE user_id = $1 AND seq < $2
                 ORDER BY seq DESC LIMIT $3",
                &[&user_id, &before, &(limit as i64 + 1)],
            )
            .await?;
        let more = rows.len() > limit;
        let entries = rows
            .iter()
            .take(limit)
            .map(|r| to_entry(r.get::<_, i64>(0) as u64, r.get::<_, &[u8]>(1)))
            .collect::<Result<_, _>>()?;
        Ok((entries, more))
    }

    /// Entries for an operator.
    pub async fn audit_entries(&self, q: AuditQuery) -> Result<Vec<Entry>, StoreError> {
        let c = self.client().await?;
        let lo = q.after.map_or(0, |a| a.saturating_add(1)) as i64;
        let hi = q
            .before
            .map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let order = if q.newest_first { "DESC" } else { "ASC" };
        let rows = c
            .query(
                &format!(
                    "SELECT seq, record FROM audit WHERE seq >= $1 AND seq < $2
                     AND ($3::text IS NULL OR user_id = $3) ORDER BY seq {order}"
                ),
                &[&lo, &hi, &q.user_id],
            )
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let e = to_entry(row.get::<_, i64>(0) as u64, row.get::<_, &[u8]>(1))?;
            if q.kind.is_none_or(|k| e.event.kind == k) && q.since.is_none_or(|s| e.event.at >= s) {
                out.push(e);
                if out.len() >= q.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Walk the chain from its anchor and check every link.
    pub async fn walk_audit(&self, hash_of: Option<u64>) -> Result<AuditWalk, StoreError> {
        let mut c = self.client().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let anchor = anchor(&*tx).await?.map(|a| anchor_of(&a));
        let mut walker = Walker::new(anchor, hash_of);
        for row in tx
            .query("SELECT seq, record FROM audit ORDER BY seq", &[])
            .await?
        {
            if !walker.entry(row.get::<_, i64>(0) as u64, row.get(1)) {
                break;
            }
        }
        Ok(walker.finish())
    }

    /// Prune entries older than `before`, at most `max`, behind a moved anchor.
    pub async fn prune_audit(&self, before: UnixTime, max: usize) -> Result<u64, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let rows = tx
            .query(
                "SELECT seq, record FROM audit ORDER BY seq LIMIT $1",
                &[&(max as i64)],
            )
            .await?;
        let mut last: Option<(u64, [u8; 32])> = None;
        let mut n = 0u64;
        for row in rows {
            let bytes: &[u8] = row.get(1);
            let r: AuditRecord = decode("audit", bytes)?;
            if r.at >= before {
                break;
            }
            last = Some((row.get::<_, i64>(0) as u64, sha256(bytes)));
            n += 1;
        }
        let Some((last_seq, last_hash)) = last else {
            return Ok(0);
        };
        tx.execute("DELETE FROM audit WHERE seq <= $1", &[&(last_seq as i64)])
            .await?;
        let pruned_before = anchor(&*tx).await?.map_or(0, |a| a.pruned);
        let record = AuditAnchorRecord {
            v: RECORD_VERSION,
            seq: last_seq,
            hash: last_hash,
            pruned: pruned_before + n,
        };
        tx.execute(
            "INSERT INTO audit_meta (name, record) VALUES ('anchor', $1)
             ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record",
            &[&encode(&record)?],
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Damage the log as an attacker with write access would (tests of `audit verify`).
    pub async fn tamper_audit(&self, seq: u64, how: Tamper) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        let get = |row: Option<tokio_postgres::Row>| {
            row.map(|r| r.get::<_, Vec<u8>>(0))
                .ok_or_else(|| StoreError::Corrupt(format!("no audit entry {seq}")))
        };
        let bytes = get(tx
            .query_opt("SELECT record FROM audit WHERE seq = $1", &[&(seq as i64)])
            .await?)?;
        let set = "UPDATE audit SET record = $2 WHERE seq = $1";
        match how {
            Tamper::Edit => {
                tx.execute(set, &[&(seq as i64), &tampered(&bytes)?])
                    .await?;
            }
            Tamper::Delete => {
                tx.execute("DELETE FROM audit WHERE seq = $1", &[&(seq as i64)])
                    .await?;
            }
            Tamper::SwapWithNext => {
                let next = tx
                    .query_opt(
                        "SELECT record FROM audit WHERE seq = $1",
                        &[&(seq as i64 + 1)],
                    )
                    .await?
                    .map(|r| r.get::<_, Vec<u8>>(0))
                    .ok_or_else(|| StoreError::Corrupt(format!("no audit entry {}", seq + 1)))?;
                tx.execute(set, &[&(seq as i64), &next]).await?;
                tx.execute(set, &[&(seq as i64 + 1), &bytes]).await?;
            }
            Tamper::Rewrite => {
                let mut fresh = tampered(&bytes)?;
                tx.execute(set, &[&(seq as i64), &fresh]).await?;
                let later = tx
                    .query(
                        "SELECT seq, record FROM audit WHERE seq > $1 ORDER BY seq",
                        &[&(seq as i64)],
                    )
                    .await?;
                for row in later {
                    fresh = relinked(row.get::<_, &[u8]>(1), &fresh)?;
                    tx.execute(set, &[&row.get::<_, i64>(0), &fresh]).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    // === operations ===

    /// No file to copy: back up PostgreSQL with `pg_dump` (and `export`).
    pub async fn backup_to(&self, _out: std::path::PathBuf) -> Result<(), StoreError> {
        Err(StoreError::Setup(
            "with store.backend = \"postgres\", back up with pg_dump, or `export` the records"
                .into(),
        ))
    }

    /// The PostgreSQL schema version.
    pub async fn schema_version(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let v: i64 = c
            .query_one("SELECT value FROM meta WHERE name = 'schema_version'", &[])
            .await?
            .get(0);
        Ok(v as u64)
    }

    /// The bytes this schema's tables take, indexes included.
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let n: Option<i64> = c
            .query_one(
                "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                &[],
            )
            .await?
            .get(0);
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Users, sessions and API keys stored.
    pub async fn counts(&self) -> Result<(u64, u64, u64), StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions),
                        (SELECT count(*) FROM api_keys)",
                &[],
            )
            .await?;
        Ok((
            row.get::<_, i64>(0) as u64,
            row.get::<_, i64>(1) as u64,
            row.get::<_, i64>(2) as u64,
        ))
    }

    /// Write every record to `out` as of one snapshot. Blocking: run it on the blocking pool.
    pub fn export_to(&self, out: &mut impl Write, now: i64) -> Result<Moved, StoreError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::Setup("export: no runtime".into()))?;
        let lines = handle.block_on(self.export_lines(now))?;
        let mut moved = Moved::default();
        for l in &lines {
            match l {
                Line::User { .. } => moved.users += 1,
                Line::Session { .. } => moved.sessions += 1,
                Line::ApiKey { .. } => moved.api_keys += 1,
                Line::SigningKey { .. } => moved.signing_keys += 1,
                Line::Mail { .. } => moved.mail += 1,
                Line::MailToken { .. } => moved.mail_tokens += 1,
                Line::Audit { .. } => moved.audit += 1,
                _ => {}
            }
            line(out, l)?;
        }
        Ok(moved)
    }

    async fn export_lines(&self, now: i64) -> Result<Vec<Line>, StoreError> {
        let mut c = self.client().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let records = |sql: &'static str| {
            let tx = &tx;
            async move { tx.query(sql, &[]).await.map_err(StoreError::from) }
        };
        let schema = self.schema_version().await? as u64;
        let mut lines = vec![Line::Header {
            format: FORMAT.into(),
            version: VERSION,
            schema,
            exported_at: now,
        }];
        for r in records("SELECT record FROM signing_keys ORDER BY kid").await? {
            let record: SigningKeyRecord = decode("signing_keys", r.get::<_, &[u8]>(0))?;
            lines.push(Line::SigningKey { record });
        }
        for r in records("SELECT record FROM users ORDER BY id").await? {
            let record: UserRecord = decode("users", r.get::<_, &[u8]>(0))?;
            lines.push(Line::User { record });
        }
        for r in records("SELECT record FROM sessions ORDER BY id").await? {
            let record: SessionRecord = decode("sessions", r.get::<_, &[u8]>(0))?;
            lines.push(Line::Session { record });
        }
        for r in records("SELECT hash, session_id FROM refresh_tokens ORDER BY hash").await? {
            let hash = HEXLOWER.encode(r.get::<_, &[u8]>(0));
            lines.push(Line::RefreshToken {
                hash,
                session_id: r.get(1),
            });
        }
        for r in records("SELECT record FROM api_keys ORDER BY hash").await? {
            let record: ApiKeyRecord = decode("api_keys", r.get::<_, &[u8]>(0))?;
            lines.push(Line::ApiKey { record });
        }
        for r in records("SELECT record FROM outbox ORDER BY id").await? {
            let record: OutboxRecord = decode("outbox", r.get::<_, &[u8]>(0))?;
            lines.push(Line::Mail { record });
        }
        for r in records("SELECT hash, record FROM mail_tokens ORDER BY hash").await? {
            let hash = HEXLOWER.encode(r.get::<_, &[u8]>(0));
            let record: MailTokenRecord = decode("mail_tokens", r.get::<_, &[u8]>(1))?;
            lines.push(Line::MailToken { hash, record });
        }
        for r in records("SELECT key, hash FROM latest_mail_token ORDER BY key").await? {
            let hash = HEXLOWER.encode(r.get::<_, &[u8]>(1));
            lines.push(Line::LatestMailToken {
                key: r.get(0),
                hash,
            });
        }
        if let Some(record) = anchor(&*tx).await? {
            lines.push(Line::AuditAnchor { record });
        }
        for r in records("SELECT seq, record FROM audit ORDER BY seq").await? {
            let (seq, cbor) = (
                r.get::<_, i64>(0) as u64,
                BASE64.encode(r.get::<_, &[u8]>(1)),
            );
            lines.push(Line::Audit { seq, cbor });
        }
        tx.commit().await?;
        Ok(lines)
    }

    /// Fill this database, which must hold no account, signing key or audit entry, from an
    /// export. All or nothing. Blocking: run it on the blocking pool.
    pub fn import_from(&self, input: impl BufRead) -> Result<Moved, StoreError> {
        let lines = read_lines(input)?;
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::Setup("import: no runtime".into()))?;
        handle.block_on(self.import_lines(lines))
    }

    async fn import_lines(&self, lines: Vec<Line>) -> Result<Moved, StoreError> {
        let mut c = self.client().await?;
        let tx = write_tx(&mut c).await?;
        for (table, what) in [
            ("users", "accounts"),
            ("signing_keys", "signing keys"),
            ("audit", "audit entries"),
        ] {
            let n: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await?
                .get(0);
            if n > 0 {
                return Err(StoreError::Setup(format!(
                    "import: this database already holds {what}; import into an empty one"
                )));
            }
        }
        let mut moved = Moved::default();
        for l in lines {
            match l {
                Line::Header { .. } => {}
                Line::User { record } => {
                    let account = Account::from(record);
                    let taken = tx
                        .query_opt(
                            "SELECT 1 FROM users WHERE email_key = $1",
                            &[&account.email.to_ascii_lowercase()],
                        )
                        .await?
                        .is_some();
                    if taken {
                        return Err(StoreError::Corrupt(format!(
                            "import: two accounts with the email {}",
                            account.email
                        )));
                    }
                    put_user(&*tx, &account).await?;
                    moved.users += 1;
                }
                Line::Session { record } => {
                    put_session(&*tx, &record).await?;
                    moved.sessions += 1;
                }
                Line::RefreshToken { hash, session_id } => {
                    tx.execute(
                        "INSERT INTO refresh_tokens (hash, session_id) VALUES ($1, $2)",
                        &[&hex32(&hash)?.as_slice(), &session_id],
                    )
                    .await?;
                }
                Line::ApiKey { record } => {
                    put_key(&*tx, &record).await?;
                    moved.api_keys += 1;
                }
                Line::SigningKey { record } => {
                    put_signing_key(&*tx, &record).await?;
                    moved.signing_keys += 1;
                }
                Line::Mail { record } => {
                    put_mail(&*tx, &QueuedMail::from(record)).await?;
                    moved.mail += 1;
                }
                Line::MailToken { hash, record } => {
                    tx.execute(
                        "INSERT INTO mail_tokens (hash, record) VALUES ($1, $2)",
                        &[&hex32(&hash)?.as_slice(), &encode(&record)?],
                    )
                    .await?;
                    moved.mail_tokens += 1;
                }
                Line::LatestMailToken { key, hash } => {
                    tx.execute(
                        "INSERT INTO latest_mail_token (key, hash) VALUES ($1, $2)",
                        &[&key, &hex32(&hash)?.as_slice()],
                    )
                    .await?;
                }
                Line::Audit { seq, cbor } => {
                    let bytes = BASE64
                        .decode(cbor.as_bytes())
                        .map_err(|e| StoreError::Corrupt(format!("import: audit {seq}: {e}")))?;
                    let record: AuditRecord = decode("audit", &bytes)?;
                    if record.seq != seq {
                        return Err(StoreError::Corrupt(format!(
                            "import: audit entry {seq} says it is entry {}",
                            record.seq
                        )));
                    }
                    tx.execute(
                        "INSERT INTO audit (seq, user_id, record) VALUES ($1, $2, $3)",
                        &[&(seq as i64), &record.user_id, &bytes],
                    )
                    .await?;
                    moved.audit += 1;
                }
                Line::AuditAnchor { record } => {
                    tx.execute(
                        "INSERT INTO audit_meta (name, record) VALUES ('anchor', $1)",
                        &[&encode(&record)?],
                    )
                    .await?;
                }
            }
        }
        if moved.signing_keys == 0 {
            return Err(StoreError::Setup(
                "import: the export holds no signing key".into(),
            ));
        }
        tx.commit().await?;
        Ok(moved)
    }
}

//! Operator use cases on the store: list accounts and change one.

use redb::ReadableTable;

use crate::domain::account::{Account, AccountChange};

use crate::domain::audit::{Event, EventKind};

use super::audit::append;
use super::records::decode_user;
use super::rows::{get_user, put_user};
use super::schema;
use super::sessions::delete_sessions_where;
use super::{Changed, RedbStore, StoreError};

impl RedbStore {
    /// Every account, oldest first.
    pub async fn list_users(&self) -> Result<Vec<Account>, StoreError> {
        self.read(|tx| {
            let mut out: Vec<Account> = Vec::new();
            for row in tx.open_table(schema::USERS)?.iter()? {
                let (_, bytes) = row?;
                out.push(decode_user(bytes.value())?);
            }
            out.sort_by(|a, b| {
                a.created_at
                    .cmp(&b.created_at)
                    .then_with(|| a.email.cmp(&b.email))
            });
            Ok(out)
        })
        .await
    }

    /// Apply an operator's `change` to the account `user_id`; returns the account after it. A
    /// disabled account's sessions end with it, in the same transaction.
    pub async fn change_user(
        &self,
        user_id: String,
        change: AccountChange,
        event: Event,
    ) -> Result<Account, StoreError> {
        self.write_if_changed(move |tx| {
            let mut user = get_user(tx, &user_id)?;
            let disable = change == AccountChange::Disable;
            let plan_before = user.plan.clone();
            if !user.apply(change) {
                return Ok((user, Changed::No));
            }
            if disable {
                delete_sessions_where(tx, &user_id, |_| true)?;
            }
            put_user(tx, &user)?;
            let event = match event.kind {
                EventKind::PlanChanged => event
                    .detail("from", plan_before)
                    .detail("to", user.plan.as_str()),
                _ => event,
            };
            append(tx, &[event.user(&user_id)])?;
            Ok((user, Changed::Yes))
        })
        .await
    }
}

//! Reading and writing one account row inside a write transaction: shared by the use-case
//! modules (accounts, sessions, two-factor, operator changes) so none of them depends on another
//! for it.

use redb::{ReadableTable, WriteTransaction};

use crate::domain::account::Account;

use super::records::{decode_user, encode_user};
use super::schema::USERS;
use super::StoreError;

/// The user with this id; a dangling reference to a missing user is damage.
pub(super) fn get_user(tx: &WriteTransaction, id: &str) -> Result<Account, StoreError> {
    let users = tx.open_table(USERS)?;
    let Some(bytes) = users.get(id)? else {
        return Err(StoreError::Corrupt(format!("missing user {id}")));
    };
    decode_user(bytes.value())
}

pub(super) fn put_user(tx: &WriteTransaction, user: &Account) -> Result<(), StoreError> {
    super::read_cache::touch(&user.id);
    tx.open_table(USERS)?
        .insert(user.id.as_str(), encode_user(user)?.as_slice())?;
    Ok(())
}

/// Remove the user's row; its cached reads go stale with it.
pub(super) fn delete_user(tx: &WriteTransaction, id: &str) -> Result<(), StoreError> {
    super::read_cache::touch(id);
    tx.open_table(USERS)?.remove(id)?;
    Ok(())
}

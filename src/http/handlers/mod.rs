//! Handlers, one module per resource: decode the request, parse into domain types, call the
//! service, encode the response. Rules live in `service`.

pub mod accounts;
pub mod api_keys;
pub mod health;
pub mod sessions;
pub mod two_factor;
pub mod verify;

use crate::domain::models::Principal;
use crate::error::Error;

use super::Ctx;

impl Ctx {
    /// The caller of a session route; the dispatcher has already authenticated it.
    fn caller(&self) -> Result<&Principal, Error> {
        self.principal.as_ref().ok_or(Error::Unauthorized)
    }
}

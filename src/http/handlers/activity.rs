//! `GET /v1/auth/activity`: the caller's own security events, newest first, in pages.

use hyper::{Response, StatusCode};

use crate::domain::audit::Entry;
use crate::domain::models::SessionCaller;
use crate::error::Error;
use crate::http::dto::ActivityResponse;
use crate::http::response::{json, Body};
use crate::http::Ctx;
use crate::service::audit;
use crate::service::state::AppState;

/// Events per page unless `limit` says otherwise, and the most a page may hold.
pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 100;

/// `GET /v1/auth/activity?limit=N&before=CURSOR` → `{events: [...], next}`.
pub async fn list(
    state: &AppState,
    ctx: Ctx<SessionCaller>,
    query: Option<&str>,
) -> Result<Response<Body>, Error> {
    let (limit, before) = page(query.unwrap_or_default())?;
    let (events, next) = audit::activity(state, &ctx.caller, limit, before).await?;
    Ok(json(StatusCode::OK, &ActivityResponse::new(&events, next)))
}

/// `limit` (1–100, else 422) and `before` (an event id, else 400); other parameters are ignored.
fn page(query: &str) -> Result<(usize, Option<u64>), Error> {
    let mut limit = None;
    let mut before = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "limit" if limit.is_none() => limit = Some(v.into_owned()),
            "before" if before.is_none() => before = Some(v.into_owned()),
            _ => {}
        }
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Ok(_) => return Err(Error::field("limit", "out_of_range")),
            Err(_) => return Err(Error::field("limit", "invalid_format")),
        },
    };
    let before = match before {
        None => None,
        Some(c) => Some(Entry::parse_id(&c).ok_or_else(|| {
            Error::InvalidRequest("The `before` cursor is not one this server gave out.".into())
        })?),
    };
    Ok((limit, before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_limit_and_cursor() {
        assert_eq!(page("").expect("ok"), (50, None));
        assert_eq!(page("limit=1&before=ev-9").expect("ok"), (1, Some(9)));
        assert_eq!(page("limit=100&x=y").expect("ok"), (100, None));
        for bad in ["limit=0", "limit=101", "limit=x", "limit=-1", "limit="] {
            assert!(matches!(page(bad), Err(Error::Validation(_))), "{bad}");
        }
        for bad in ["before=", "before=9", "before=ev-x", "before=%00"] {
            assert!(matches!(page(bad), Err(Error::InvalidRequest(_))), "{bad}");
        }
    }
}

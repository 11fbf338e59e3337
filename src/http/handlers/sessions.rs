//! `logout`, `list`, `revoke`: the caller's sessions.

use hyper::{Response, StatusCode};

use crate::domain::models::SessionCaller;
use crate::error::Error;
use crate::http::dto::SessionsResponse;
use crate::http::response::{json, message, Body};
use crate::http::Ctx;
use crate::service::sessions;
use crate::service::state::AppState;

/// `POST /v1/auth/logout` → `{message_code: "logged_out"}`.
pub async fn logout(state: &AppState, ctx: Ctx<SessionCaller>) -> Result<Response<Body>, Error> {
    sessions::logout(state, &ctx.caller, &ctx.client).await?;
    Ok(message(StatusCode::OK, "logged_out"))
}

/// `GET /v1/auth/sessions` → `{sessions: [...]}`.
pub async fn list(state: &AppState, ctx: Ctx<SessionCaller>) -> Result<Response<Body>, Error> {
    let who = &ctx.caller;
    let list = sessions::list(state, who).await?;
    Ok(json(
        StatusCode::OK,
        &SessionsResponse::new(&list, &who.session_id),
    ))
}

/// `DELETE /v1/auth/sessions/{id}` → `{message_code: "session_revoked"}`.
pub async fn revoke(
    state: &AppState,
    ctx: Ctx<SessionCaller>,
    id: &str,
) -> Result<Response<Body>, Error> {
    sessions::revoke(state, &ctx.caller, id, &ctx.client).await?;
    Ok(message(StatusCode::OK, "session_revoked"))
}

//! `create`, `list`, `revoke`: the caller's API keys.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::domain::models::SessionCaller;
use crate::domain::types::{parse_expires_in, KeyName, Scopes};
use crate::error::{Error, FieldError};
use crate::http::dto::{ApiKeysResponse, CreateApiKeyRequest, CreatedApiKey};
use crate::http::response::{json, message, Body};
use crate::http::Ctx;
use crate::service::api_keys::{self, KeyRequest};
use crate::service::state::AppState;

/// `POST /v1/auth/api-keys` → 201 with the key, shown this once.
pub async fn create(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<SessionCaller>,
) -> Result<Response<Body>, Error> {
    let dto: CreateApiKeyRequest = ctx.json(req).await?;
    let request = parse_key_request(state, dto)?;
    let (secret, key) = api_keys::create(state, &ctx.caller, request, &ctx.client).await?;
    Ok(json(
        StatusCode::CREATED,
        &CreatedApiKey::new(&secret, &key),
    ))
}

fn parse_key_request(state: &AppState, dto: CreateApiKeyRequest) -> Result<KeyRequest, Error> {
    let cfg = &state.config.api_keys;
    let name = dto
        .name
        .as_deref()
        .ok_or(FieldError {
            field: "name",
            code: "required",
        })
        .and_then(KeyName::parse);
    let scopes = dto
        .scopes
        .ok_or(FieldError {
            field: "scopes",
            code: "required",
        })
        .and_then(|s| Scopes::parse(s, &cfg.scopes));
    let expires_in = parse_expires_in(
        dto.expires_in.as_deref(),
        cfg.default_expires_in,
        cfg.max_expires_in,
    );
    match (name, scopes, expires_in) {
        (Ok(name), Ok(scopes), Ok(expires_in)) => Ok(KeyRequest {
            name,
            scopes,
            expires_in,
        }),
        (name, scopes, expires_in) => Err(Error::Validation(
            [name.err(), scopes.err(), expires_in.err()]
                .into_iter()
                .flatten()
                .collect(),
        )),
    }
}

/// `GET /v1/auth/api-keys` → `{api_keys: [...]}`.
pub async fn list(state: &AppState, ctx: Ctx<SessionCaller>) -> Result<Response<Body>, Error> {
    let keys = api_keys::list(state, &ctx.caller).await?;
    Ok(json(StatusCode::OK, &ApiKeysResponse::new(&keys)))
}

/// `DELETE /v1/auth/api-keys/{id}` → `{message_code: "api_key_revoked"}`.
pub async fn revoke(
    state: &AppState,
    ctx: Ctx<SessionCaller>,
    id: &str,
) -> Result<Response<Body>, Error> {
    api_keys::revoke(state, &ctx.caller, id, &ctx.client).await?;
    Ok(message(StatusCode::OK, "api_key_revoked"))
}

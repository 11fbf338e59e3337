//! `setup`, `verify`, `disable`: two-factor authentication with an authenticator app.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::domain::models::SessionCaller;
use crate::error::Error;
use crate::http::dto::{
    TotpDisableRequest, TotpEnabledResponse, TotpSetupRequest, TotpSetupResponse, TotpVerifyRequest,
};
use crate::http::response::{json, message, Body};
use crate::http::Ctx;
use crate::service::state::AppState;
use crate::service::two_factor;

/// `POST /v1/auth/2fa/setup` → 200 `{secret, qr_code_url, qr_code_svg}`.
pub async fn setup(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<SessionCaller>,
) -> Result<Response<Body>, Error> {
    let dto: Option<TotpSetupRequest> = ctx.optional_json(req).await?;
    let password = dto.and_then(|d| d.password);
    let e = two_factor::setup(state, &ctx.caller, password, &ctx.client).await?;
    let body = TotpSetupResponse {
        secret: e.secret.expose(),
        qr_code_url: e.qr_code_url.expose(),
        qr_code_svg: &e.qr_code_svg,
    };
    Ok(json(StatusCode::OK, &body))
}

/// `POST /v1/auth/2fa/verify` → 200 `{message_code: "2fa_enabled", backup_codes}`.
pub async fn verify(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<SessionCaller>,
) -> Result<Response<Body>, Error> {
    let dto: TotpVerifyRequest = ctx.json(req).await?;
    let code = dto.code.ok_or(Error::field("code", "required"))?;
    let codes = two_factor::verify(state, &ctx.caller, code, &ctx.client).await?;
    let body = TotpEnabledResponse {
        message_code: "2fa_enabled",
        backup_codes: codes.iter().map(|c| c.expose()).collect(),
    };
    Ok(json(StatusCode::OK, &body))
}

/// `POST /v1/auth/2fa/disable` → 200 `{message_code: "2fa_disabled"}`.
pub async fn disable(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<SessionCaller>,
) -> Result<Response<Body>, Error> {
    let dto: TotpDisableRequest = ctx.json(req).await?;
    let (password, code) = match (dto.password, dto.code) {
        (Some(p), Some(c)) => (p, c),
        (p, _) => {
            let field = if p.is_none() { "password" } else { "code" };
            return Err(Error::field(field, "required"));
        }
    };
    two_factor::disable(state, &ctx.caller, password, code, &ctx.client).await?;
    Ok(message(StatusCode::OK, "2fa_disabled"))
}

//! `register`, `login`, `refresh`, `me`, and a user's own password change and account deletion.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::domain::models::{Principal, SessionCaller};
use crate::domain::types::{Company, DisplayName, Email};
use crate::error::{Error, FieldError};
use crate::http::dto::{
    self, DeleteAccountRequest, EmailChangeRequest, ForgotPasswordRequest, LoginRequest,
    MeResponse, PasswordChangeRequest, RefreshRequest, RegisterRequest, ResetPasswordRequest,
    TokenRequest,
};
use crate::http::response::{json, message, Body};
use crate::http::Ctx;
use crate::service::accounts::{self, Registration};
use crate::service::state::AppState;
use crate::service::tokens;
use crate::service::{email, lifecycle};

/// `POST /v1/auth/register` → 201.
pub async fn register(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<()>,
) -> Result<Response<Body>, Error> {
    let dto: RegisterRequest = ctx.json(req).await?;
    let reg = parse_registration(dto, state.config.passwords.min_length)?;
    let (pair, user) = accounts::register(state, reg, ctx.client).await?;
    Ok(json(StatusCode::CREATED, &dto::registered(&pair, &user)))
}

/// Every field problem at once, as one 422.
fn parse_registration(dto: RegisterRequest, min_length: usize) -> Result<Registration, Error> {
    let mut errors = Vec::new();
    let required = |field| FieldError {
        field,
        code: "required",
    };
    let email = keep(
        &mut errors,
        dto.email
            .as_deref()
            .ok_or(required("email"))
            .and_then(Email::parse),
    );
    let name = keep(
        &mut errors,
        dto.name
            .as_deref()
            .ok_or(required("name"))
            .and_then(DisplayName::parse),
    );
    let company = keep(&mut errors, Company::parse(dto.company.as_deref()));
    let password = keep(
        &mut errors,
        dto.password.ok_or(required("password")).and_then(|p| {
            p.check_new(min_length, email.as_ref().map(Email::as_str))
                .map(|()| p)
        }),
    );
    match (email, password, name, company) {
        (Some(email), Some(password), Some(name), Some(company)) if errors.is_empty() => {
            Ok(Registration {
                email,
                password,
                name,
                company,
            })
        }
        _ => Err(Error::Validation(errors)),
    }
}

fn keep<T>(errors: &mut Vec<FieldError>, r: Result<T, FieldError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

/// `POST /v1/auth/login` → 200.
pub async fn login(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<()>,
) -> Result<Response<Body>, Error> {
    let dto: LoginRequest = ctx.json(req).await?;
    let (email, password) = match (dto.email, dto.password) {
        (Some(e), Some(p)) => (e, p),
        (e, _) => {
            let field = if e.is_none() { "email" } else { "password" };
            return Err(Error::field(field, "required"));
        }
    };
    let (pair, user) = accounts::login(state, &email, password, dto.totp_code, ctx.client).await?;
    Ok(json(StatusCode::OK, &dto::logged_in(&pair, &user)))
}

/// `POST /v1/auth/refresh` → 200.
pub async fn refresh(
    state: &std::sync::Arc<AppState>,
    req: Request<Incoming>,
    ctx: Ctx<()>,
) -> Result<Response<Body>, Error> {
    let dto: RefreshRequest = ctx.json(req).await?;
    let presented = dto
        .refresh_token
        .ok_or(Error::field("refresh_token", "required"))?;
    let pair = tokens::refresh(state, presented, ctx.client).await?;
    Ok(json(StatusCode::OK, &dto::refreshed(&pair)))
}

/// `GET /v1/auth/me` → 200.
pub fn me(ctx: Ctx<Principal>) -> Result<Response<Body>, Error> {
    Ok(json(StatusCode::OK, &MeResponse::from(&ctx.caller.user)))
}

/// `POST /v1/auth/password/change` → 200 `{message_code: "password_changed"}`.
pub async fn change_password(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<SessionCaller>,
) -> Result<Response<Body>, Error> {
    let dto: PasswordChangeRequest = ctx.json(req).await?;
    let (current, new) = match (dto.current_password, dto.new_password) {
        (Some(c), Some(n)) => (c, n),
        (c, _) => {
            let field = if c.is_none() {
                "current_password"
            } else {
                "new_password"
            };
            return Err(Error::field(field, "required"));
        }
    };
    lifecycle::change_password(state, &ctx.caller, current, new, &ctx.client).await?;
    Ok(message(StatusCode::OK, "password_changed"))
}

/// `DELETE /v1/auth/me` → 200 `{message_code: "account_deleted"}`.
pub async fn delete_account(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<SessionCaller>,
) -> Result<Response<Body>, Error> {
    let dto: DeleteAccountRequest = ctx.json(req).await?;
    let password = dto.password.ok_or(Error::field("password", "required"))?;
    lifecycle::delete_account(state, &ctx.caller, password, dto.totp_code, &ctx.client).await?;
    Ok(message(StatusCode::OK, "account_deleted"))
}

/// `POST /v1/auth/email/verification` → 202 `{message_code: "verification_email_sent"}`.
pub async fn request_verification(
    state: &AppState,
    ctx: Ctx<SessionCaller>,
) -> Result<Response<Body>, Error> {
    email::request_verification(state, &ctx.caller).await?;
    Ok(message(StatusCode::ACCEPTED, "verification_email_sent"))
}

/// `POST /v1/auth/email/verify` → 200 `{message_code: "email_verified"}`.
pub async fn verify_email(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<()>,
) -> Result<Response<Body>, Error> {
    let dto: TokenRequest = ctx.json(req).await?;
    let token = dto.token.ok_or(Error::field("token", "required"))?;
    email::verify(state, token, &ctx.client).await?;
    Ok(message(StatusCode::OK, "email_verified"))
}

/// `POST /v1/auth/password/forgot` → always 202 `{message_code: "password_reset_email_sent"}`.
pub async fn forgot_password(
    state: &std::sync::Arc<AppState>,
    req: Request<Incoming>,
    ctx: Ctx<()>,
) -> Result<Response<Body>, Error> {
    let dto: ForgotPasswordRequest = ctx.json(req).await?;
    let address = dto.email.ok_or(Error::field("email", "required"))?;
    email::forgot_password(state, &address, ctx.client.ip).await?;
    Ok(message(StatusCode::ACCEPTED, "password_reset_email_sent"))
}

/// `POST /v1/auth/password/reset` → 200 `{message_code: "password_reset"}`.
pub async fn reset_password(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<()>,
) -> Result<Response<Body>, Error> {
    let dto: ResetPasswordRequest = ctx.json(req).await?;
    let (token, password) = match (dto.token, dto.password) {
        (Some(t), Some(p)) => (t, p),
        (t, _) => {
            let field = if t.is_none() { "token" } else { "password" };
            return Err(Error::field(field, "required"));
        }
    };
    email::reset_password(state, token, password, dto.totp_code, &ctx.client).await?;
    Ok(message(StatusCode::OK, "password_reset"))
}

/// `POST /v1/auth/email/change` → 202 `{message_code: "email_change_requested"}`.
pub async fn request_email_change(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<SessionCaller>,
) -> Result<Response<Body>, Error> {
    let dto: EmailChangeRequest = ctx.json(req).await?;
    let (new_email, password) = match (dto.new_email, dto.password) {
        (Some(e), Some(p)) => (e, p),
        (e, _) => {
            let field = if e.is_none() { "new_email" } else { "password" };
            return Err(Error::field(field, "required"));
        }
    };
    email::request_email_change(state, &ctx.caller, &new_email, password, ctx.client.ip).await?;
    Ok(message(StatusCode::ACCEPTED, "email_change_requested"))
}

/// `POST /v1/auth/email/change/confirm` → 200 `{message_code: "email_changed"}`.
pub async fn confirm_email_change(
    state: &AppState,
    req: Request<Incoming>,
    ctx: Ctx<()>,
) -> Result<Response<Body>, Error> {
    let dto: TokenRequest = ctx.json(req).await?;
    let token = dto.token.ok_or(Error::field("token", "required"))?;
    email::confirm_email_change(state, token, &ctx.client).await?;
    Ok(message(StatusCode::OK, "email_changed"))
}

//! The HTTP edge: one request in, one response out. Assigns the request id, routes, checks the
//! credential the route needs, dispatches to a handler, and is the only place an `Error` becomes a
//! response and a request becomes a log line.

pub mod auth;
pub mod body;
pub mod client;
pub mod connections;
pub mod cors;
pub mod dto;
pub(crate) mod handlers;
pub mod openapi;
pub mod response;
pub mod router;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, Response};
use tracing::Instrument;

use crate::crypto::random;
use crate::domain::models::{ClientInfo, Principal};
use crate::error::Error;
use crate::metrics::LoginOutcome;
use crate::service;
use crate::state::AppState;

use response::Body;
use router::{Access, Route};

/// What a handler knows about the request besides its head and body.
#[derive(Debug)]
pub struct Ctx {
    /// The caller, for routes that need a session.
    pub principal: Option<Principal>,
    /// Address and user agent.
    pub client: ClientInfo,
}

/// Serve one request. Never fails: every error is rendered here. Everything logged while
/// serving it, in services and on the blocking pool too, carries its `request_id`.
pub async fn serve_request(
    state: Arc<AppState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let request_id = random::id("");
    let route = Route::parse(req.method(), req.uri().path());
    let route_name = route.as_ref().map_or("unmatched", Route::name);
    let span = tracing::info_span!("request", request_id = %request_id, route = route_name);
    serve_in_span(state, req, peer, request_id, route)
        .instrument(span)
        .await
}

async fn serve_in_span(
    state: Arc<AppState>,
    req: Request<Incoming>,
    peer: SocketAddr,
    request_id: String,
    route: Result<Route, Error>,
) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let route_name = route.as_ref().map_or("unmatched", Route::name);
    let client = client::info(
        req.headers(),
        peer,
        &state.config.rate_limits.trusted_proxies,
    );
    let ip = client.ip;
    let origin = cors::allowed_origin(req.headers(), &state.config.cors.allowed_origins);
    let result = match (route, &origin) {
        (Err(Error::MethodNotAllowed(allow)), Some(o)) if method == hyper::Method::OPTIONS => {
            Ok(cors::preflight(o.clone(), allow))
        }
        (Ok(route), _) => guarded(&state, route, req, client).await,
        (Err(e), _) => Err(e),
    };
    if route_name == "login" {
        state.metrics.login(login_outcome(&result));
    }
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            if e.is_server_error() {
                tracing::error!(request_id, route = route_name, error = %e, "request failed");
            }
            response::error(&e)
        }
    };
    if let Some(o) = origin {
        cors::decorate(&mut resp, o);
    }
    response::harden(&mut resp, &request_id);
    let elapsed = started.elapsed();
    state
        .metrics
        .request(route_name, resp.status().as_u16(), elapsed.as_secs_f64());
    let user_id = resp.extensions().get::<LoggedUser>().map(|u| u.0.as_str());
    tracing::info!(
        request_id,
        method = %method,
        route = route_name,
        status = resp.status().as_u16(),
        latency_us = elapsed.as_micros() as u64,
        user_id,
        client = ip.map(tracing::field::display),
        "request"
    );
    resp
}

/// Dispatch under the per-request deadline. No per-address limit applies here: a request with a
/// valid credential is never refused because of what other clients at its address did, and
/// bearer credentials (signed tokens, 190-bit keys) leave nothing to guess. Limits live where
/// guessing can succeed: passwords and codes (`service::guesses`).
async fn guarded(
    state: &Arc<AppState>,
    route: Route,
    req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, Error> {
    let deadline = state.config.limits.request_timeout;
    tokio::time::timeout(deadline, dispatch(state, route, req, client))
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(
                deadline_secs = deadline.as_secs(),
                "request deadline passed"
            );
            Err(Error::Overloaded {
                retry_after: std::time::Duration::from_secs(1),
            })
        })
}

async fn dispatch(
    state: &Arc<AppState>,
    route: Route,
    req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, Error> {
    let principal = match route.access() {
        Access::Public => None,
        Access::Any => {
            Some(service::credentials::authenticate(state, auth::bearer(req.headers())?).await?)
        }
        Access::Session => {
            let who =
                service::credentials::authenticate(state, auth::bearer(req.headers())?).await?;
            if who.session_id().is_none() {
                return Err(Error::SessionRequired);
            }
            Some(who)
        }
    };
    let user_id = principal.as_ref().map(|p| LoggedUser(p.user.id.clone()));
    let ctx = Ctx { principal, client };
    let mut result = match route {
        Route::Register => handlers::accounts::register(state, req, ctx).await,
        Route::Login => handlers::accounts::login(state, req, ctx).await,
        Route::Refresh => handlers::accounts::refresh(state, req, ctx).await,
        Route::Me => handlers::accounts::me(ctx),
        Route::Logout => handlers::sessions::logout(state, ctx).await,
        Route::ListSessions => handlers::sessions::list(state, ctx).await,
        Route::RevokeSession(id) => handlers::sessions::revoke(state, ctx, &id).await,
        Route::CreateApiKey => handlers::api_keys::create(state, req, ctx).await,
        Route::ListApiKeys => handlers::api_keys::list(state, ctx).await,
        Route::RevokeApiKey(id) => handlers::api_keys::revoke(state, ctx, &id).await,
        Route::Verify => handlers::verify::verify(state, &req, ctx),
        Route::TotpSetup => handlers::two_factor::setup(state, req, ctx).await,
        Route::TotpVerify => handlers::two_factor::verify(state, req, ctx).await,
        Route::TotpDisable => handlers::two_factor::disable(state, req, ctx).await,
        Route::Jwks => Ok(handlers::health::jwks(state)),
        Route::Healthz => Ok(handlers::health::healthz()),
        Route::Readyz => handlers::health::readyz(state).await,
        Route::Metrics => handlers::health::metrics(state, req.headers()).await,
        Route::OpenApi => Ok(response::json(
            hyper::StatusCode::OK,
            &openapi::document(&state.config.tokens.issuer),
        )),
    };
    if let (Ok(resp), Some(user)) = (&mut result, user_id) {
        resp.extensions_mut().insert(user);
    }
    result
}

fn login_outcome(result: &Result<Response<Body>, Error>) -> LoginOutcome {
    match result {
        Ok(_) => LoginOutcome::Success,
        Err(Error::InvalidCredentials) => LoginOutcome::Invalid,
        Err(Error::RateLimited { .. }) => LoginOutcome::Throttled,
        Err(Error::TotpRequired | Error::InvalidTotpCode) => LoginOutcome::Totp,
        Err(_) => LoginOutcome::Other,
    }
}

/// The caller of a request, carried on its response to the request's log line.
#[derive(Debug, Clone)]
struct LoggedUser(String);

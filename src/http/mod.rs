//! The HTTP edge: one request in, one response out. Assigns the request id, routes, checks the
//! credential the route needs, dispatches to a handler, and is the only place an `Error` becomes a
//! response and a request becomes a log line.

pub mod auth;
pub mod body;
pub mod dto;
mod handlers;
pub mod response;
pub mod router;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response};

use crate::crypto::random;
use crate::domain::models::{ClientInfo, Principal};
use crate::error::Error;
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

/// Serve one request. Never fails: every error is rendered here.
pub async fn serve_request(
    state: Arc<AppState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = random::id("");
    let method = req.method().clone();
    let route = Route::parse(req.method(), req.uri().path());
    let route_name = route.as_ref().map_or("unmatched", Route::name);
    let result = match route {
        Ok(route) => dispatch(&state, route, req, peer).await,
        Err(e) => Err(e),
    };
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            if e.is_server_error() {
                tracing::error!(request_id, route = route_name, error = %e, "request failed");
            }
            response::error(&e)
        }
    };
    response::harden(&mut resp, &request_id);
    tracing::info!(
        request_id,
        method = %method,
        route = route_name,
        status = resp.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

async fn dispatch(
    state: &Arc<AppState>,
    route: Route,
    req: Request<Incoming>,
    peer: SocketAddr,
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
    let ctx = Ctx {
        principal,
        client: client_info(&req, peer),
    };
    match route {
        Route::Register => handlers::accounts::register(state, req, ctx).await,
        Route::Login => handlers::accounts::login(state, req, ctx).await,
        Route::Refresh => handlers::accounts::refresh(state, req).await,
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
    }
}

fn client_info(req: &Request<Incoming>, peer: SocketAddr) -> ClientInfo {
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    ClientInfo {
        ip: Some(peer.ip()),
        user_agent,
    }
}

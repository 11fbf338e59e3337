//! The HTTP edge: one request in, one response out. Assigns the request id, routes, checks the
//! credential the route needs, dispatches to a handler, and is the only place an `Error` becomes a
//! response and a request becomes a log line.

pub mod auth;
pub mod body;
pub mod cors;
pub mod dto;
pub(crate) mod handlers;
pub mod openapi;
pub mod response;
pub mod router;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response};

use crate::crypto::random;
use crate::domain::models::{ClientInfo, Principal};
use crate::error::Error;
use crate::metrics::LoginOutcome;
use crate::service;
use crate::service::rate_limit::Bucket;
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
    let client = client_info(&req, peer, &state.config.rate_limits.trusted_proxies);
    let ip = client.ip;
    let origin = cors::allowed_origin(req.headers(), &state.config.cors.allowed_origins);
    let result = match (route, &origin) {
        (Err(Error::MethodNotAllowed(allow)), Some(o)) if method == hyper::Method::OPTIONS => {
            Ok(cors::preflight(o.clone(), allow))
        }
        (Ok(route), _) => guarded(&state, route, req, client).await,
        (Err(e), _) => Err(e),
    };
    if result.as_ref().is_err_and(Error::is_credential_failure) {
        state.limits.record(Bucket::Failures, ip, state.now());
    }
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
        "request"
    );
    resp
}

/// Dispatch under the failure limit of the client's address and the per-request deadline.
async fn guarded(
    state: &Arc<AppState>,
    route: Route,
    req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, Error> {
    if route.checks_credentials() {
        state
            .limits
            .check(Bucket::Failures, client.ip, state.now())?;
    }
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
        Route::Metrics => handlers::health::metrics(state).await,
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

/// Who is calling: the peer address, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` address that is not itself a trusted proxy (entries further left are
/// written by the client and prove nothing).
fn client_info(req: &Request<Incoming>, peer: SocketAddr, trusted: &[IpAddr]) -> ClientInfo {
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    ClientInfo {
        ip: Some(client_ip(req.headers(), peer.ip(), trusted)),
        user_agent,
    }
}

fn client_ip(headers: &header::HeaderMap, peer: IpAddr, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderMap, HeaderValue};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 203.0.113.9, 10.0.0.2"),
        );
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        assert_eq!(client_ip(&h, ip("127.0.0.1"), &trusted), ip("203.0.113.9"));
        assert_eq!(
            client_ip(&h, ip("198.51.100.1"), &trusted),
            ip("198.51.100.1"),
            "untrusted peer"
        );
        assert_eq!(
            client_ip(&h, ip("127.0.0.1"), &[]),
            ip("127.0.0.1"),
            "no trusted proxies"
        );
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("junk, 10.0.0.2"),
        );
        assert_eq!(client_ip(&h, ip("127.0.0.1"), &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_ip(&HeaderMap::new(), ip("127.0.0.1"), &trusted),
            ip("127.0.0.1")
        );
    }
}

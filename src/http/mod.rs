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
pub mod pages;
pub mod response;
pub mod router;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, Response};
use tracing::Instrument;

use crate::crypto::random;
use crate::domain::models::{ClientInfo, Principal, SessionCaller};
use crate::error::Error;
use crate::metrics::LoginOutcome;
use crate::service;
use crate::service::state::AppState;

use response::Body;
use router::{AnyRoute, PublicRoute, Route, SessionRoute};

/// What a handler knows about the request besides its head and body: the caller, as its
/// route's access level requires (`()` for public routes, a `Principal` for routes open to API
/// keys, a `SessionCaller` for session-only ones), the client, and the body limits.
#[derive(Debug)]
pub struct Ctx<C> {
    /// Who is calling.
    pub caller: C,
    /// Address and user agent.
    pub client: ClientInfo,
    max_body: usize,
    body_timeout: std::time::Duration,
}

impl<C> Ctx<C> {
    fn new(caller: C, client: ClientInfo, state: &AppState) -> Self {
        Ctx {
            caller,
            client,
            max_body: state.config.limits.max_body_bytes,
            body_timeout: state.config.limits.body_read_timeout,
        }
    }

    /// The request's JSON body, under the configured size and time limits.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        req: Request<Incoming>,
    ) -> Result<T, Error> {
        body::read_json(req, self.max_body, self.body_timeout).await
    }

    /// Like `json`, but an empty body is `None`.
    pub async fn optional_json<T: serde::de::DeserializeOwned>(
        &self,
        req: Request<Incoming>,
    ) -> Result<Option<T>, Error> {
        body::read_optional_json(req, self.max_body, self.body_timeout).await
    }

    /// The request's HTML form fields, under the same limits.
    pub async fn form(&self, req: Request<Incoming>) -> Result<Vec<(String, String)>, Error> {
        body::read_form(req, self.max_body, self.body_timeout).await
    }
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

/// Authenticate as the route's access level requires and hand its handler that caller.
async fn dispatch(
    state: &Arc<AppState>,
    route: Route,
    req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, Error> {
    let who = match &route {
        Route::Public(_) => None,
        Route::Any(_) | Route::Session(_) => {
            Some(service::credentials::authenticate(state, auth::bearer(req.headers())?).await?)
        }
    };
    let user_id = who.as_ref().map(|p| LoggedUser(p.user.id.clone()));
    let mut result = match (route, who) {
        (Route::Public(r), _) => public(state, r, req, Ctx::new((), client, state)).await,
        (Route::Any(r), Some(who)) => any(state, r, req, Ctx::new(who, client, state)).await,
        (Route::Session(r), Some(who)) => {
            let caller = who.into_session().ok_or(Error::SessionRequired)?;
            session(state, r, req, Ctx::new(caller, client, state)).await
        }
        (Route::Any(_) | Route::Session(_), None) => Err(Error::Unauthorized),
    };
    if let (Ok(resp), Some(user)) = (&mut result, user_id) {
        resp.extensions_mut().insert(user);
    }
    result
}

async fn public(
    state: &Arc<AppState>,
    route: PublicRoute,
    req: Request<Incoming>,
    ctx: Ctx<()>,
) -> Result<Response<Body>, Error> {
    match route {
        PublicRoute::Register => handlers::accounts::register(state, req, ctx).await,
        PublicRoute::Login => handlers::accounts::login(state, req, ctx).await,
        PublicRoute::Refresh => handlers::accounts::refresh(state, req, ctx).await,
        PublicRoute::VerifyEmail => handlers::accounts::verify_email(state, req, ctx).await,
        PublicRoute::ForgotPassword => handlers::accounts::forgot_password(state, req, ctx).await,
        PublicRoute::ResetPassword => handlers::accounts::reset_password(state, req, ctx).await,
        PublicRoute::ConfirmEmailChange => {
            handlers::accounts::confirm_email_change(state, req, ctx).await
        }
        PublicRoute::ShowPage(page) => Ok(pages::show(state, page, req.uri().query())),
        PublicRoute::SubmitPage(page) => Ok(pages::submit(state, page, req, ctx).await),
        PublicRoute::Jwks => Ok(handlers::health::jwks(state)),
        PublicRoute::Healthz => Ok(handlers::health::healthz()),
        PublicRoute::Readyz => handlers::health::readyz(state).await,
        PublicRoute::Metrics => handlers::health::metrics(state, req.headers()).await,
        PublicRoute::OpenApi => Ok(response::json(
            hyper::StatusCode::OK,
            &openapi::document(&state.config),
        )),
    }
}

async fn any(
    state: &Arc<AppState>,
    route: AnyRoute,
    req: Request<Incoming>,
    ctx: Ctx<Principal>,
) -> Result<Response<Body>, Error> {
    match route {
        AnyRoute::Me => handlers::accounts::me(ctx),
        AnyRoute::Verify => handlers::verify::verify(state, &req, ctx),
    }
}

async fn session(
    state: &Arc<AppState>,
    route: SessionRoute,
    req: Request<Incoming>,
    ctx: Ctx<SessionCaller>,
) -> Result<Response<Body>, Error> {
    match route {
        SessionRoute::Logout => handlers::sessions::logout(state, ctx).await,
        SessionRoute::ListSessions => handlers::sessions::list(state, ctx).await,
        SessionRoute::RevokeSession(id) => handlers::sessions::revoke(state, ctx, &id).await,
        SessionRoute::CreateApiKey => handlers::api_keys::create(state, req, ctx).await,
        SessionRoute::ListApiKeys => handlers::api_keys::list(state, ctx).await,
        SessionRoute::RevokeApiKey(id) => handlers::api_keys::revoke(state, ctx, &id).await,
        SessionRoute::TotpSetup => handlers::two_factor::setup(state, req, ctx).await,
        SessionRoute::TotpVerify => handlers::two_factor::verify(state, req, ctx).await,
        SessionRoute::TotpDisable => handlers::two_factor::disable(state, req, ctx).await,
        SessionRoute::ChangePassword => handlers::accounts::change_password(state, req, ctx).await,
        SessionRoute::DeleteAccount => handlers::accounts::delete_account(state, req, ctx).await,
        SessionRoute::RequestEmailChange => {
            handlers::accounts::request_email_change(state, req, ctx).await
        }
        SessionRoute::Activity => handlers::activity::list(state, ctx, req.uri().query()).await,
        SessionRoute::RequestVerification => {
            handlers::accounts::request_verification(state, ctx).await
        }
    }
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

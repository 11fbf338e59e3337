//! `jwks`, `healthz`, `readyz`: what other services and orchestrators ask.

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use crate::error::Error;
use crate::http::dto::{JwksResponse, StatusResponse};
use crate::http::response::{json, Body};
use crate::metrics::Format;
use crate::service;
use crate::service::state::AppState;

/// `GET /.well-known/jwks.json`: public keys only. Verifiers may cache it for a minute.
pub fn jwks(state: &AppState) -> Response<Body> {
    let mut resp = json(
        StatusCode::OK,
        &JwksResponse {
            keys: &state.keyring().jwks(state.now()),
        },
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    resp
}

/// `GET /healthz`: the process is up and serving HTTP.
pub fn healthz() -> Response<Body> {
    json(StatusCode::OK, &StatusResponse { status: "ok" })
}

/// `GET /readyz`: the store answers and the server is not draining; otherwise 503.
pub async fn readyz(state: &AppState) -> Result<Response<Body>, Error> {
    service::health::ready(state).await?;
    Ok(json(StatusCode::OK, &StatusResponse { status: "ready" }))
}

/// `GET /metrics`: Prometheus text 0.0.4, or OpenMetrics when `Accept` prefers it.
pub async fn metrics(state: &AppState, headers: &HeaderMap) -> Result<Response<Body>, Error> {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let format = Format::negotiate(&accept.join(","));
    let text = service::health::metrics(state, format).await?;
    let mut resp = Response::new(Body::from(text));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    // Caches must not hand one format's body to a client that asked for the other.
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(resp)
}

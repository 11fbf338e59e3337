//! `jwks`, `healthz`, `readyz`: what other services and orchestrators ask.

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::error::Error;
use crate::http::dto::{JwksResponse, StatusResponse};
use crate::http::response::{json, Body};
use crate::service;
use crate::state::AppState;

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

/// `GET /metrics`: Prometheus (OpenMetrics) text.
pub async fn metrics(state: &AppState) -> Result<Response<Body>, Error> {
    let text = service::health::metrics(state).await?;
    let mut resp = Response::new(Body::from(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(resp)
}

//! Who may call the API: holders of `LINKER_API_KEY`, or loopback clients when no key is set.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::error::ApiError;

/// Middleware: lets the request through only if the caller may use the API.
pub async fn require_api_access(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match &state.api_key {
        Some(key) => check_bearer(&request, key)?,
        None => check_loopback(&request)?,
    }
    Ok(next.run(request).await)
}

fn check_bearer(request: &Request, key: &SecretString) -> Result<(), ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(ApiError::Unauthorized(
            "send the API key as Authorization: Bearer <LINKER_API_KEY>",
        ))?;
    if bool::from(presented.as_bytes().ct_eq(key.expose_secret().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("the API key is not valid"))
    }
}

/// A request relayed by a proxy on the same host (ngrok, a sidecar) arrives from loopback
/// but comes from elsewhere: forwarding headers disqualify it.
fn check_loopback(request: &Request) -> Result<(), ApiError> {
    let loopback = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(addr)| addr.ip().to_canonical().is_loopback());
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|name| request.headers().contains_key(*name));
    if loopback && !forwarded {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "LINKER_API_KEY is not set, so only loopback clients may call this API",
        ))
    }
}

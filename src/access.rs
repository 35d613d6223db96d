//! Who may call the API: holders of `LINKER_API_KEY`, or loopback clients when no key is set.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::error::ApiError;

/// Extractor: present only if the caller may use the API. An extractor rather than a
/// middleware, so the check costs no extra layer per request.
#[derive(Debug, Clone, Copy)]
pub struct ApiAccess;

impl FromRequestParts<Arc<AppState>> for ApiAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        check(parts, state).map(|()| Self)
    }
}

/// Extractor for `/metrics`: open when `METRICS_PUBLIC` is true, else as [`ApiAccess`].
#[derive(Debug, Clone, Copy)]
pub struct MetricsAccess;

impl FromRequestParts<Arc<AppState>> for MetricsAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if state.metrics_public {
            return Ok(Self);
        }
        check(parts, state).map(|()| Self)
    }
}

fn check(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    match &state.api_key {
        Some(key) => check_bearer(&parts.headers, key),
        None => check_loopback(parts),
    }
}

fn check_bearer(headers: &HeaderMap, key: &SecretString) -> Result<(), ApiError> {
    let presented = headers
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
fn check_loopback(request: &Parts) -> Result<(), ApiError> {
    let loopback = request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(addr)| addr.ip().to_canonical().is_loopback());
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|name| request.headers.contains_key(*name));
    if loopback && !forwarded {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "LINKER_API_KEY is not set, so only loopback clients may call this API",
        ))
    }
}

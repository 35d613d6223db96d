//! Who may call the API, and as whom: the operator (holders of `LINKER_API_KEY`, or loopback
//! clients when no key is set), who may act as any connection, or a person by their personal
//! key, who acts as their own. Without an operator key, the `Host` must also be a loopback
//! name or the public URL's host, so a page on a rebinding domain that resolves to 127.0.0.1
//! cannot use a browser to attach.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::config::Settings;
use crate::http::error::ApiError;
use crate::service::keys::PersonalKeys;
use crate::util::cause_chain;

/// Who may call the API, from the settings.
#[derive(Debug)]
pub struct AccessPolicy {
    /// `LINKER_API_KEY`.
    api_key: Option<SecretString>,
    /// `METRICS_PUBLIC`: whether `/metrics` needs no API key.
    metrics_public: bool,
    /// The host of `PUBLIC_URL`, accepted in `Host` beside loopback names.
    public_host: Option<String>,
}

impl AccessPolicy {
    /// The policy the settings describe.
    pub fn new(settings: &Settings) -> Self {
        Self {
            api_key: settings.linker_api_key.clone(),
            metrics_public: settings.metrics_public,
            public_host: settings
                .public_url
                .host_str()
                .map(|h| h.to_ascii_lowercase()),
        }
    }

    /// Whether `LINKER_API_KEY` is set.
    pub fn has_key(&self) -> bool {
        self.api_key.is_some()
    }

    fn check(&self, parts: &Parts) -> Result<(), ApiError> {
        match &self.api_key {
            Some(key) => check_bearer(&parts.headers, key),
            None => {
                check_loopback(parts)?;
                self.check_host(&parts.headers)
            }
        }
    }

    /// The `Host` names the machine itself or the public URL's host.
    fn check_host(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .map(host_name)
            .unwrap_or_default();
        let allowed = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]" | "::1")
            || host.ends_with(".localhost")
            || self.public_host.as_deref() == Some(host.as_str());
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(
                "LINKER_API_KEY is not set, so only requests to a loopback host name or PUBLIC_URL's host are accepted (this Host header names another)",
            ))
        }
    }
}

/// The host part of a `Host` header value, lower-cased, without the port.
fn host_name(value: &str) -> String {
    let value = value.trim().to_ascii_lowercase();
    if value.starts_with('[') {
        return value
            .split_once(']')
            .map_or(value.clone(), |(ip, _)| format!("{ip}]"));
    }
    value
        .rsplit_once(':')
        .map_or(value.clone(), |(host, _)| host.to_owned())
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The operator: may act as any connection (`as`), and as the default one without it.
    Operator,
    /// A person, by their personal key: acts as their own connection only (its user gid).
    Person(String),
}

/// Extractor: who calls, present only if they may use the API. An extractor rather than a
/// middleware, so the check costs no extra layer per request.
#[derive(Debug, Clone)]
pub struct ApiAccess(pub Actor);

impl FromRequestParts<Arc<AppState>> for ApiAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if let Some(presented) = bearer(&parts.headers)
            && PersonalKeys::is_personal(presented)
        {
            let presented = SecretString::from(presented);
            return match state.keys.owner(&presented).await {
                Ok(Some(user_gid)) => Ok(Self(Actor::Person(user_gid))),
                Ok(None) => Err(ApiError::Unauthorized(
                    "the personal key is not valid: revoked, replaced by a new one, or its connection was disconnected",
                )),
                Err(error) => Err(ApiError::StoreUnavailable(cause_chain(&error))),
            };
        }
        state.access.check(parts).map(|()| Self(Actor::Operator))
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
        if state.access.metrics_public {
            return Ok(Self);
        }
        state.access.check(parts).map(|()| Self)
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

fn check_bearer(headers: &HeaderMap, key: &SecretString) -> Result<(), ApiError> {
    let presented = bearer(headers).ok_or(ApiError::Unauthorized(
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
            "LINKER_API_KEY is not set, so only clients on this machine (loopback, not relayed by a proxy) may call this API; this request came from another address (a container's published port arrives from the bridge network): set LINKER_API_KEY and send it as Authorization: Bearer <key>",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port_and_case() {
        assert_eq!(host_name("LocalHost:3000"), "localhost");
        assert_eq!(host_name("[::1]:3000"), "[::1]");
        assert_eq!(
            host_name("rebind.attacker.example"),
            "rebind.attacker.example"
        );
    }
}

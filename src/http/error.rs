//! `ApiError`: the one mapping from failures to an HTTP status and the JSON envelope
//! `{"error": {"code": "snake_case", "message": "…"}}`.

use std::error::Error;

use crate::util::cause_chain;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::Level;

use crate::asana::{AsanaError, OAuthError, TokenError};
use crate::context::ContextError;
use crate::domain::InvalidInput;
use crate::service::attach::AttachError;

/// A failure as the client sees it. Each variant owns its status code and `code` string.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`: the body or a field is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `unauthorized`: missing or wrong API key, or a non-loopback client without one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403 `forbidden`: a personal key asked to act as someone else.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404 `connection_not_found`: `as` names no connected Asana user.
    #[error("{0}")]
    ConnectionNotFound(String),
    /// 404 `not_found`: no such route.
    #[error("no such route")]
    RouteNotFound,
    /// 405 `method_not_allowed`.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 413 `context_too_large`: the context needs more comments than `MAX_COMMENT_PARTS`.
    #[error("{0}")]
    ContextTooLarge(String),
    /// 413 `payload_too_large`: body over the route's limit (64 KiB; 1 MiB for webhooks).
    #[error(
        "the request body is larger than this route accepts (64 KiB; 1 MiB for webhook deliveries)"
    )]
    PayloadTooLarge,
    /// 415 `unsupported_media_type`: body is not `application/json`.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 404 `context_not_found`: the context server has no such context.
    #[error("context {name:?} was not found on the context server{}", did_you_mean(.suggestions))]
    ContextNotFound {
        /// The name asked for.
        name: String,
        /// Close names the server has.
        suggestions: Vec<String>,
    },
    /// 501 `listing_not_supported`: the source cannot list its contexts.
    #[error("{0}")]
    ListingUnsupported(String),
    /// 404 `task_not_found`: Asana has no such task, or the user cannot see it.
    #[error("Asana task {0} was not found, or the connected user cannot see it")]
    TaskNotFound(String),
    /// 403 `asana_forbidden`: Asana refused the action for the connected user.
    #[error("Asana refused the request: {0}")]
    AsanaForbidden(String),
    /// 429 `asana_rate_limited`: Asana asked us to slow down.
    #[error("Asana's rate limit was reached; retry later")]
    AsanaRateLimited {
        /// Seconds Asana asked us to wait, passed on as `Retry-After`.
        retry_after: Option<u64>,
    },
    /// 503 `asana_not_connected`: no usable Asana token; the user must consent again.
    #[error(
        "{0}; connect Asana: open /asana/oauth/authorize in a browser, or run `mcp-asana-linker authorize`"
    )]
    AsanaNotConnected(String),
    /// 503 `not_configured`: settings needed for this request are missing.
    #[error("the service is not configured for this: set {}", .0.join(", "))]
    NotConfigured(Vec<&'static str>),
    /// 502 `upstream_error`: Asana or the context server failed; the cause goes to the log.
    #[error("{message}")]
    Upstream {
        /// What the client is told.
        message: String,
        /// What the log is told.
        cause: String,
    },
    /// 504 `upstream_timeout`: Asana or the context server did not answer in time.
    #[error("{0} did not answer in time")]
    UpstreamTimeout(&'static str),
    /// 504 `outcome_unknown`: a write was sent and its outcome is unknown; retrying with the
    /// same `Idempotency-Key` finds what was posted instead of posting twice.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// 422 `idempotency_key_reused`: the key was used with another body.
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyKeyReused,
    /// 409 `idempotency_in_flight`: a request with the key is still running (maybe on
    /// another replica); retry after `Retry-After` to get its outcome.
    #[error(
        "a request with this Idempotency-Key is still running; retry with the same key after Retry-After seconds to get its outcome"
    )]
    IdempotencyInFlight {
        /// Seconds to wait, passed on as `Retry-After`.
        retry_after: u64,
    },
    /// 503 `store_unavailable`: the store did not answer; the cause goes to the log.
    #[error("the linker's store is unavailable; retry later")]
    StoreUnavailable(String),
    /// 403 `webhook_handshake_refused`: a handshake for a hook the linker did not announce.
    #[error("this webhook was not registered by this linker (mcp-asana-linker webhooks register)")]
    WebhookHandshakeRefused,
    /// 503 `webhook_queue_full`: too many events waiting; Asana will deliver again.
    #[error("too many webhook events are waiting; deliver again later")]
    WebhookQueueFull,
    /// 500 `internal_error`: a fault of ours; the cause goes to the log.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// Status, `code` and log level of every variant, in one place. ERROR is kept for what
    /// an operator must act on (a fault of ours); failures of others are WARN, refusals INFO.
    fn parts(&self) -> (StatusCode, &'static str, Level) {
        use Level as L;
        use StatusCode as S;
        match self {
            Self::InvalidRequest(_) => (S::BAD_REQUEST, "invalid_request", L::INFO),
            Self::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized", L::INFO),
            Self::Forbidden(_) => (S::FORBIDDEN, "forbidden", L::INFO),
            Self::ConnectionNotFound(_) => (S::NOT_FOUND, "connection_not_found", L::INFO),
            Self::RouteNotFound => (S::NOT_FOUND, "not_found", L::INFO),
            Self::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method_not_allowed", L::INFO),
            Self::PayloadTooLarge => (S::PAYLOAD_TOO_LARGE, "payload_too_large", L::INFO),
            Self::ContextTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "context_too_large", L::INFO),
            Self::UnsupportedMediaType => {
                (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", L::INFO)
            }
            Self::ContextNotFound { .. } => (S::NOT_FOUND, "context_not_found", L::INFO),
            Self::ListingUnsupported(_) => (S::NOT_IMPLEMENTED, "listing_not_supported", L::INFO),
            Self::TaskNotFound(_) => (S::NOT_FOUND, "task_not_found", L::INFO),
            Self::AsanaForbidden(_) => (S::FORBIDDEN, "asana_forbidden", L::INFO),
            Self::AsanaRateLimited { .. } => (S::TOO_MANY_REQUESTS, "asana_rate_limited", L::WARN),
            Self::AsanaNotConnected(_) => (S::SERVICE_UNAVAILABLE, "asana_not_connected", L::WARN),
            Self::NotConfigured(_) => (S::SERVICE_UNAVAILABLE, "not_configured", L::WARN),
            Self::Upstream { .. } => (S::BAD_GATEWAY, "upstream_error", L::WARN),
            Self::UpstreamTimeout(_) => (S::GATEWAY_TIMEOUT, "upstream_timeout", L::WARN),
            Self::OutcomeUnknown(_) => (S::GATEWAY_TIMEOUT, "outcome_unknown", L::WARN),
            Self::IdempotencyKeyReused => {
                (S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", L::INFO)
            }
            Self::IdempotencyInFlight { .. } => (S::CONFLICT, "idempotency_in_flight", L::INFO),
            Self::StoreUnavailable(_) => (S::SERVICE_UNAVAILABLE, "store_unavailable", L::ERROR),
            Self::WebhookHandshakeRefused => (S::FORBIDDEN, "webhook_handshake_refused", L::INFO),
            Self::WebhookQueueFull => (S::SERVICE_UNAVAILABLE, "webhook_queue_full", L::WARN),
            Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal_error", L::ERROR),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The stable `code` string clients match on.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// The JSON body: `{"error": {"code", "message"}}`.
    pub fn envelope(&self) -> serde_json::Value {
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let Some(id) = crate::telemetry::request_id::current() {
            error["request_id"] = json!(id);
        }
        json!({"error": error})
    }

    fn upstream(message: impl Into<String>, cause: &dyn Error) -> Self {
        Self::Upstream {
            message: message.into(),
            cause: cause_chain(cause),
        }
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; close names: {}", suggestions.join(", "))
    }
}

/// What the request's one log line says about its error, attached to the response for
/// [`crate::telemetry::observe`] to write: the code, the level, and the detail (the cause,
/// for failures whose client message leaves it out).
#[derive(Debug, Clone)]
pub struct ErrorLog {
    /// The error's `code`.
    pub code: &'static str,
    /// The level of the request's log line.
    pub level: Level,
    /// What the operator reads.
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, level) = self.parts();
        let detail = match &self {
            Self::Upstream { cause, .. }
            | Self::Internal(cause)
            | Self::StoreUnavailable(cause) => cause.clone(),
            other => other.to_string(),
        };
        let mut response = (status, axum::Json(self.envelope())).into_response();
        if let Self::AsanaRateLimited {
            retry_after: Some(secs),
        }
        | Self::IdempotencyInFlight { retry_after: secs } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(ErrorLog {
            code,
            level,
            detail,
        });
        response
    }
}

impl From<crate::idempotency::IdempotencyError> for ApiError {
    fn from(error: crate::idempotency::IdempotencyError) -> Self {
        use crate::idempotency::IdempotencyError as E;
        match error {
            E::KeyReused => Self::IdempotencyKeyReused,
            E::InFlight { retry_after } => Self::IdempotencyInFlight {
                retry_after: retry_after.as_secs().max(1),
            },
            E::Store(error) => Self::StoreUnavailable(cause_chain(&error)),
        }
    }
}

impl From<InvalidInput> for ApiError {
    fn from(error: InvalidInput) -> Self {
        Self::InvalidRequest(error.0)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            _ => Self::InvalidRequest(rejection.body_text()),
        }
    }
}

impl From<ContextError> for ApiError {
    fn from(error: ContextError) -> Self {
        match error {
            ContextError::NotFound { name, suggestions } => {
                Self::ContextNotFound { name, suggestions }
            }
            ContextError::InvalidName(message) => Self::InvalidRequest(message),
            ContextError::InvalidArguments(message) => {
                Self::InvalidRequest(format!("invalid prompt arguments: {message}"))
            }
            ContextError::ListingUnsupported => Self::ListingUnsupported(error.to_string()),
            ContextError::Timeout => Self::UpstreamTimeout("the context server"),
            other => Self::upstream("the context server failed", &other),
        }
    }
}

impl From<AsanaError> for ApiError {
    fn from(error: AsanaError) -> Self {
        match error {
            AsanaError::NotFound { task_gid, .. } => Self::TaskNotFound(task_gid),
            AsanaError::Forbidden(message) => Self::AsanaForbidden(message),
            AsanaError::BadRequest(message) => {
                Self::InvalidRequest(format!("Asana refused the request: {message}"))
            }
            AsanaError::Unauthorized => {
                Self::AsanaNotConnected("Asana no longer accepts the stored token".to_owned())
            }
            AsanaError::RateLimited { retry_after } => Self::AsanaRateLimited { retry_after },
            AsanaError::Timeout => Self::UpstreamTimeout("Asana"),
            AsanaError::MaybePosted(_) => Self::OutcomeUnknown(
                "Asana did not confirm the comment and it could not be found yet: it may have been posted; retry with the same Idempotency-Key to find it without posting twice".to_owned(),
            ),
            other => Self::upstream("Asana failed", &other),
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        match error {
            OAuthError::Timeout => Self::UpstreamTimeout("Asana's token endpoint"),
            OAuthError::Unavailable {
                status: 429,
                retry_after,
            } => Self::AsanaRateLimited { retry_after },
            other => Self::upstream("Asana's token endpoint failed", &other),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::NotConnected(reason) => Self::AsanaNotConnected(reason),
            TokenError::NotConfigured(missing) => Self::NotConfigured(missing),
            TokenError::Refresh(e) => e.into(),
            TokenError::Storage(e) => Self::StoreUnavailable(cause_chain(&e)),
        }
    }
}

impl From<AttachError> for ApiError {
    fn from(error: AttachError) -> Self {
        match error {
            AttachError::NotConfigured(missing) => Self::NotConfigured(missing),
            AttachError::Token(e) => e.into(),
            AttachError::Context(e) => e.into(),
            AttachError::Asana(e) => e.into(),
            AttachError::TooLarge(e) => Self::ContextTooLarge(e.to_string()),
        }
    }
}

/// The raw body, but an over-long or unreadable one gets the JSON envelope.
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::InvalidRequest(rejection.body_text()),
            })
    }
}

/// `axum::Json`, but its rejections are `ApiError`s, so bad bodies get the JSON envelope.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the codes out of `parts`, the one match every variant must be in (the compiler
    /// sees to that), so no code can be missed by a hand-made list.
    #[test]
    fn every_code_is_snake_case_and_unique_to_its_variant() {
        let source = include_str!("error.rs");
        let start = source.find("fn parts(").expect("parts is defined");
        let end = start + source[start..].find("\n    }\n").expect("parts ends");
        let codes: Vec<&str> = source[start..end].split('"').skip(1).step_by(2).collect();
        let variants = source[start..end].matches("Self::").count();

        assert_eq!(codes.len(), variants, "one code per variant");
        for code in &codes {
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code} is not snake_case"
            );
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), codes.len(), "codes are unique");
    }

    #[test]
    fn internal_causes_are_not_shown_to_the_client() {
        let error = ApiError::Internal("disk full at /secret/path".to_owned());
        assert_eq!(error.to_string(), "internal error");
    }
}

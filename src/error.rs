//! `ApiError`: the one mapping from failures to an HTTP status and the JSON envelope
//! `{"error": {"code": "snake_case", "message": "…"}}`.

use std::error::Error;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::asana::{AsanaError, OAuthError, TokenError};
use crate::attach::AttachError;
use crate::context::ContextError;
use crate::domain::InvalidInput;

/// A failure as the client sees it. Each variant owns its status code and `code` string.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`: the body or a field is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `unauthorized`: missing or wrong API key, or a non-loopback client without one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404 `not_found`: no such route.
    #[error("no such route")]
    RouteNotFound,
    /// 405 `method_not_allowed`.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 413 `context_too_large`: the context needs more comments than `MAX_COMMENT_PARTS`.
    #[error("{0}")]
    ContextTooLarge(String),
    /// 413 `payload_too_large`: body over 64 KiB.
    #[error("request body is larger than 64 KiB")]
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
    #[error("{0}; visit /asana/oauth/authorize to connect Asana")]
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
    /// 422 `idempotency_key_reused`: the key was used with another body.
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyKeyReused,
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
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::RouteNotFound | Self::ContextNotFound { .. } | Self::TaskNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge | Self::ContextTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::AsanaForbidden(_) => StatusCode::FORBIDDEN,
            Self::AsanaRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::AsanaNotConnected(_) | Self::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ListingUnsupported(_) => StatusCode::NOT_IMPLEMENTED,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::WebhookHandshakeRefused => StatusCode::FORBIDDEN,
            Self::WebhookQueueFull => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable `code` string clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::RouteNotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ContextTooLarge(_) => "context_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ContextNotFound { .. } => "context_not_found",
            Self::ListingUnsupported(_) => "listing_not_supported",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::WebhookHandshakeRefused => "webhook_handshake_refused",
            Self::WebhookQueueFull => "webhook_queue_full",
            Self::TaskNotFound(_) => "task_not_found",
            Self::AsanaForbidden(_) => "asana_forbidden",
            Self::AsanaRateLimited { .. } => "asana_rate_limited",
            Self::AsanaNotConnected(_) => "asana_not_connected",
            Self::NotConfigured(_) => "not_configured",
            Self::Upstream { .. } => "upstream_error",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The JSON body: `{"error": {"code", "message"}}`.
    pub fn envelope(&self) -> serde_json::Value {
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let Some(id) = crate::request_id::current() {
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

/// Formats an error and its sources as one line, for the log.
pub fn cause_chain(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Upstream { cause, .. } | Self::Internal(cause) => {
                tracing::error!(code = self.code(), cause = %cause, "request failed");
            }
            _ if status.is_server_error() => {
                tracing::warn!(code = self.code(), error = %self, "request failed");
            }
            _ => tracing::info!(code = self.code(), error = %self, "request refused"),
        }
        let mut response = (status, axum::Json(self.envelope())).into_response();
        if let Self::AsanaRateLimited {
            retry_after: Some(secs),
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
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
            TokenError::Storage(e) => Self::Internal(cause_chain(&e)),
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

    #[test]
    fn every_code_is_snake_case() {
        let errors = [
            ApiError::InvalidRequest(String::new()),
            ApiError::Unauthorized(""),
            ApiError::RouteNotFound,
            ApiError::MethodNotAllowed,
            ApiError::PayloadTooLarge,
            ApiError::ContextTooLarge(String::new()),
            ApiError::UnsupportedMediaType,
            ApiError::ContextNotFound {
                name: String::new(),
                suggestions: vec![],
            },
            ApiError::ListingUnsupported(String::new()),
            ApiError::TaskNotFound(String::new()),
            ApiError::AsanaForbidden(String::new()),
            ApiError::AsanaRateLimited { retry_after: None },
            ApiError::AsanaNotConnected(String::new()),
            ApiError::NotConfigured(vec![]),
            ApiError::UpstreamTimeout("x"),
            ApiError::Internal(String::new()),
            ApiError::IdempotencyKeyReused,
            ApiError::WebhookHandshakeRefused,
            ApiError::WebhookQueueFull,
        ];
        for error in errors {
            let code = error.code();
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code} is not snake_case"
            );
        }
    }

    #[test]
    fn internal_causes_are_not_shown_to_the_client() {
        let error = ApiError::Internal("disk full at /secret/path".to_owned());
        assert_eq!(error.to_string(), "internal error");
    }
}

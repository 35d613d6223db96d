//! `POST /asana/webhooks/{hook_id}`: Asana's handshake and signed event deliveries. The
//! receiver checks, writes the events to the store and answers; it never waits on MCP or
//! Asana, and a 200 means the events are kept whatever happens to this replica next.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::http::error::{ApiBytes, ApiError};
use crate::util::cause_chain;
use crate::webhooks::{EnqueueError, EventBatch, HandshakeRefused, HookId, verify_signature};

/// Handshake (`X-Hook-Secret`) or events (`X-Hook-Signature`).
#[utoipa::path(post, path = "/asana/webhooks/{hook_id}", tag = "webhooks",
    params(
        ("hook_id" = String, Path, description = "The hook id chosen at registration", pattern = r"^[A-Za-z0-9_-]{1,64}$"),
        ("X-Hook-Secret" = Option<String>, Header, description = "Handshake secret"),
        ("X-Hook-Signature" = Option<String>, Header, description = "Hex HMAC-SHA256 of the body"),
    ),
    responses(
        (status = 200, description = "Handshake echoed, or events stored for a worker"),
        (status = 400, description = "Malformed hook id, secret or body", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Bad or missing signature", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "Handshake for a hook not announced", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "Delivery over 1 MiB", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Too many events waiting, or the store is unavailable; Asana delivers again", body = crate::http::openapi::ErrorBody),
    ))]
pub async fn receive(
    State(state): State<Arc<AppState>>,
    hook_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let Path(hook_id) = hook_id.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let hook_id = HookId::parse(&hook_id)?;
    if let Some(secret) = headers.get("x-hook-secret") {
        let secret_text = secret
            .to_str()
            .map_err(|_| ApiError::InvalidRequest("X-Hook-Secret is not ASCII".to_owned()))?;
        return match state.hooks.handshake(&hook_id, secret_text).await {
            Ok(()) => {
                tracing::info!(hook_id = hook_id.as_str(), "webhook handshake accepted");
                let mut response = StatusCode::OK.into_response();
                response
                    .headers_mut()
                    .insert("x-hook-secret", secret.clone());
                Ok(response)
            }
            Err(HandshakeRefused::NotExpected(_)) => Err(ApiError::WebhookHandshakeRefused),
            Err(HandshakeRefused::Store(error)) => Err(ApiError::Internal(cause_chain(&error))),
        };
    }
    let secret = state
        .hooks
        .secret(&hook_id)
        .await
        .map_err(|e| ApiError::Internal(cause_chain(&e)))?
        .ok_or(ApiError::Unauthorized("unknown webhook"))?;
    let signed = headers
        .get("x-hook-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|signature| verify_signature(&secret, &body, signature));
    if !signed {
        return Err(ApiError::Unauthorized("X-Hook-Signature does not match"));
    }
    let batch: EventBatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidRequest(format!("not an event batch: {e}")))?;
    let new = state
        .webhook_jobs
        .enqueue(&hook_id, &batch.events)
        .await
        .map_err(|error| match error {
            EnqueueError::Full => ApiError::WebhookQueueFull,
            EnqueueError::Store(error) => ApiError::StoreUnavailable(cause_chain(&error)),
        })?;
    tracing::info!(
        hook_id = hook_id.as_str(),
        events = batch.events.len(),
        new,
        "webhook delivery stored"
    );
    Ok(StatusCode::OK.into_response())
}

//! `POST /asana/attach-context`, with an optional `Idempotency-Key`, and
//! `POST /asana/preview`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::access::ApiAccess;
use crate::app::AppState;
use crate::attach::{Attached, Preview, attach_context, preview_context};
use crate::domain::{AttachRequest, AttachRequestBody};
use crate::error::{ApiError, ApiJson};
use crate::idempotency::{IdempotencyKey, Once, Outcome, fingerprint};

/// Posts the named context as a comment on the task; 201 with the story gid. With an
/// `Idempotency-Key`, a repeat within 24 h gets the first outcome again.
#[utoipa::path(post, path = "/asana/attach-context", tag = "contexts",
    security((), ("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first outcome for 24 h")),
    request_body = AttachRequestBody,
    responses(
        (status = 201, description = "Comment(s) posted", body = Attached),
        (status = 200, description = "Custom field set", body = Attached),
        (status = 400, description = "Invalid request", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = crate::openapi::ErrorBody),
        (status = 404, description = "Context or task not found", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body or context too large", body = crate::openapi::ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = crate::openapi::ErrorBody),
        (status = 429, description = "Asana rate limit", body = crate::openapi::ErrorBody),
        (status = 502, description = "Upstream failed", body = crate::openapi::ErrorBody),
        (status = 503, description = "Not connected or not configured", body = crate::openapi::ErrorBody),
        (status = 504, description = "Upstream timeout", body = crate::openapi::ErrorBody),
    ))]
pub async fn attach(
    State(state): State<Arc<AppState>>,
    _: ApiAccess,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(body): ApiJson<AttachRequestBody>,
) -> Result<Response, ApiError> {
    let request = AttachRequest::try_from(body)?;
    let Some(key) = key else {
        return Ok(respond(run(&state, &request).await));
    };
    let once = state
        .idempotency
        .run_once(
            &key,
            &fingerprint(&request.canonical()),
            || run(&state, &request),
            outcome,
        )
        .await
        .map_err(|_| ApiError::IdempotencyKeyReused)?;
    Ok(match once {
        Once::Ran(result) => respond(result),
        Once::Replayed(outcome) => replay(outcome),
    })
}

/// What attach would post (the `html_text` parts), without calling Asana.
#[utoipa::path(post, path = "/asana/preview", tag = "contexts",
    security((), ("api_key" = [])),
    request_body = AttachRequestBody,
    responses(
        (status = 200, description = "The parts that would be posted", body = Preview),
        (status = 400, description = "Invalid request", body = crate::openapi::ErrorBody),
        (status = 404, description = "Context not found", body = crate::openapi::ErrorBody),
        (status = 413, description = "Context too large", body = crate::openapi::ErrorBody),
    ))]
pub async fn preview(
    State(state): State<Arc<AppState>>,
    _: ApiAccess,
    ApiJson(body): ApiJson<AttachRequestBody>,
) -> Result<Json<Preview>, ApiError> {
    let request = AttachRequest::try_from(body)?;
    Ok(Json(preview_context(&state, &request).await?))
}

async fn run(state: &AppState, request: &AttachRequest) -> Result<Attached, ApiError> {
    // Boxed: the attach future is large (retries, reconciliation, every source kind), and
    // the handler's future is moved several times by the router before it is polled.
    let attach = Box::pin(attach_context(state, request));
    tokio::time::timeout(state.request_deadline, attach)
        .await
        .map_err(|_| ApiError::UpstreamTimeout("the request deadline (REQUEST_DEADLINE_SECS)"))?
        .map_err(ApiError::from)
}

/// The `Idempotency-Key` header, validated; an extractor so the handler does not copy every
/// header.
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get("idempotency-key")
            .map(|value| {
                let value = value.to_str().map_err(|_| {
                    ApiError::InvalidRequest("Idempotency-Key must be visible ASCII".to_owned())
                })?;
                Ok::<_, ApiError>(IdempotencyKey::parse(value)?)
            })
            .transpose()?;
        Ok(Self(key))
    }
}

fn respond(result: Result<Attached, ApiError>) -> Response {
    match result {
        Ok(attached) => (attached.status(), Json(attached)).into_response(),
        Err(error) => error.into_response(),
    }
}

fn outcome(result: &Result<Attached, ApiError>) -> Outcome {
    match result {
        Ok(attached) => Outcome {
            status: attached.status().as_u16(),
            body: serde_json::to_value(attached).unwrap_or_default(),
        },
        Err(error) => Outcome {
            status: error.status().as_u16(),
            body: error.envelope(),
        },
    }
}

fn replay(outcome: Outcome) -> Response {
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(outcome.body)).into_response();
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

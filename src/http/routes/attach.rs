//! `POST /asana/attach-context`, with an optional `Idempotency-Key`, and
//! `POST /asana/preview`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::asana::Marker;
use crate::asana::{TokenError, TokenManager};
use crate::domain::{AttachRequest, AttachRequestBody};
use crate::http::access::{Actor, ApiAccess};
use crate::http::error::{ApiError, ApiJson};
use crate::idempotency::{IdempotencyKey, Keep, Once, Outcome, fingerprint};
use crate::service::attach::{Attached, Preview};
use crate::telemetry::request_id;
use crate::util::run_to_end::RunToEnd;

/// Posts the named context as a comment on the task; 201 with the story gid. With an
/// `Idempotency-Key`, a repeat within 24 h gets the first outcome again.
#[utoipa::path(post, path = "/asana/attach-context", tag = "contexts",
    security((), ("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first outcome for 24 h; 1–255 visible ASCII characters", pattern = r"^[!-~]{1,255}$")),
    request_body = AttachRequestBody,
    responses(
        (status = 201, description = "Comment(s) posted", body = Attached),
        (status = 200, description = "Custom field set", body = Attached),
        (status = 400, description = "Invalid request", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API key (operator or personal), or a personal key revoked", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "A personal key named another connection in `as` (`forbidden`)", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "Context or task not found, or `as` names no connection (`connection_not_found`)", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "Body or context too large", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "Body is not application/json", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still running (`idempotency_in_flight`); retry after `Retry-After`", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "Asana rate limit", body = crate::http::openapi::ErrorBody),
        (status = 502, description = "Upstream failed", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Not connected or not configured", body = crate::http::openapi::ErrorBody),
        (status = 504, description = "Upstream timeout, or the outcome is unknown (`outcome_unknown`: retry with the same Idempotency-Key)", body = crate::http::openapi::ErrorBody),
    ))]
pub async fn attach(
    State(state): State<Arc<AppState>>,
    ApiAccess(actor): ApiAccess,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(mut body): ApiJson<AttachRequestBody>,
) -> Result<Response, ApiError> {
    let acting_as = body.acting_as.take();
    let request = AttachRequest::try_from(body)?;
    Ok(
        match attach_for(state, actor, acting_as, request, key).await? {
            Answer::Fresh(result) => respond(result),
            Answer::Replayed(outcome) => replay(outcome),
        },
    )
}

/// What an attach answered.
pub enum Answer {
    /// It ran now.
    Fresh(Result<Attached, ApiError>),
    /// Its `Idempotency-Key` was used before: the first outcome.
    Replayed(Outcome),
}

/// Attaches for `actor` (as the connection `acting_as` names, if any), once per key; the
/// client waits at most `REQUEST_DEADLINE_SECS`. Shared by the HTTP route and the MCP tool.
pub async fn attach_for(
    state: Arc<AppState>,
    actor: Actor,
    acting_as: Option<String>,
    request: AttachRequest,
    key: Option<IdempotencyKey>,
) -> Result<Answer, ApiError> {
    state.attacher.configured()?;
    let acting = acting(&state, actor, acting_as.as_deref()).await?;
    let deadline = state.request_deadline;
    // Once it writes to Asana, the attach must run to its end and record its outcome, whether
    // or not the client is still there to read it: dropped (hang-up, deadline), it carries on
    // on a task of its own.
    let id = request_id::current().unwrap_or_default();
    let attach = RunToEnd::new(request_id::scope(
        id,
        run_keyed(state, acting, request, key),
    ));
    match tokio::time::timeout(deadline, attach).await {
        Ok(answer) => answer,
        Err(_) => Err(ApiError::OutcomeUnknown(
            "the attach is still running after REQUEST_DEADLINE_SECS and may still post; retry with the same Idempotency-Key to get its outcome without posting twice".to_owned(),
        )),
    }
}

/// The connection a call acts as: a personal key's owner, or for the operator the one
/// `as` names (a user gid or email), else the default one.
pub async fn acting(
    state: &AppState,
    actor: Actor,
    acting_as: Option<&str>,
) -> Result<Arc<TokenManager>, ApiError> {
    let connections = &state.attacher.connections;
    match (actor, acting_as) {
        (Actor::Person(user_gid), named) => {
            // A disconnected person's keys are revoked with the connection, and every replica
            // drops the connection within a second, before it re-reads the key.
            let acting = connections
                .get(&user_gid)
                .await
                .map_err(|error| match error {
                    TokenError::NotConnected(_) => ApiError::Unauthorized(
                        "the personal key is not valid: its connection was disconnected",
                    ),
                    other => other.into(),
                })?;
            let own = acting.user();
            let names_owner = |who: &str| {
                who == user_gid
                    || own
                        .as_ref()
                        .and_then(|user| user.email.as_deref())
                        .is_some_and(|email| email.eq_ignore_ascii_case(who))
            };
            if named.is_some_and(|who| !names_owner(who)) {
                return Err(ApiError::Forbidden(
                    "a personal key acts only as its owner; only the operator key may name another connection in \"as\"",
                ));
            }
            Ok(acting)
        }
        (Actor::Operator, Some(who)) => connections.find(who).await.map_err(|error| match error {
            TokenError::NotConnected(reason) => ApiError::ConnectionNotFound(reason),
            other => other.into(),
        }),
        (Actor::Operator, None) => Ok(connections.default().await?),
    }
}

/// The attach, once per `Idempotency-Key` when there is one; keys are the acting
/// connection's own.
async fn run_keyed(
    state: Arc<AppState>,
    acting: Arc<TokenManager>,
    request: AttachRequest,
    key: Option<IdempotencyKey>,
) -> Result<Answer, ApiError> {
    let Some(key) = key else {
        let result = run(&state, &acting, &request, &Marker::random(), false).await;
        return Ok(Answer::Fresh(result.map_err(|refused| refused.error)));
    };
    let marker = Marker::for_key(key.as_str());
    // Boxed: inline, the keyed path's future (claims, waits, the attach) would make every
    // attach's future half as large again, and that whole future is copied when it starts.
    let once = Box::pin(state.idempotency.run_once(
        acting.user_gid(),
        &key,
        &fingerprint(&request.canonical()),
        |resume| run(&state, &acting, &request, &marker, resume),
        outcome,
    ))
    .await?;
    Ok(match once {
        Once::Ran(result) => Answer::Fresh(result.map_err(|refused| refused.error)),
        Once::Replayed(outcome) => Answer::Replayed(outcome),
    })
}

/// What attach would post (the `html_text` parts), without calling Asana.
#[utoipa::path(post, path = "/asana/preview", tag = "contexts",
    security((), ("api_key" = [])),
    request_body = AttachRequestBody,
    responses(
        (status = 200, description = "The parts that would be posted", body = Preview),
        (status = 400, description = "Invalid request", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "Context not found", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "Body or context too large", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "Body is not application/json", body = crate::http::openapi::ErrorBody),
        (status = 502, description = "The context server failed", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "No context source configured", body = crate::http::openapi::ErrorBody),
        (status = 504, description = "The context server did not answer in time", body = crate::http::openapi::ErrorBody),
    ))]
pub async fn preview(
    State(state): State<Arc<AppState>>,
    _: ApiAccess,
    ApiJson(body): ApiJson<AttachRequestBody>,
) -> Result<Json<Preview>, ApiError> {
    let request = AttachRequest::try_from(body)?;
    Ok(Json(state.attacher.preview(&request).await?))
}

/// A failed attach as the client sees it, and whether it had sent a write.
struct Refused {
    error: ApiError,
    wrote: bool,
}

async fn run(
    state: &AppState,
    acting: &TokenManager,
    request: &AttachRequest,
    marker: &Marker,
    resume: bool,
) -> Result<Attached, Refused> {
    // Not boxed here: `RunToEnd` already keeps the whole attach on the heap.
    state
        .attacher
        .attach(acting, request, marker, resume)
        .await
        .map_err(|failed| Refused {
            wrote: failed.wrote,
            error: failed.error.into(),
        })
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

fn outcome(result: &Result<Attached, Refused>) -> (Outcome, Keep) {
    match result {
        Ok(attached) => {
            let outcome = Outcome {
                status: attached.status().as_u16(),
                body: serde_json::to_value(attached).unwrap_or_default(),
            };
            (outcome, Keep::Final)
        }
        Err(Refused { error, wrote }) => {
            let status = error.status().as_u16();
            let outcome = Outcome {
                status,
                body: error.envelope(),
            };
            (outcome, Keep::for_status(status, *wrote))
        }
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

//! `GET /ready`, `GET /metrics`, `GET /openapi.json`.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::access::MetricsAccess;
use crate::app::AppState;

/// The readiness answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadyBody {
    /// Whether the service can do its job.
    pub ready: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Readiness: 200 when settings are complete, a token is valid or refreshable and the
/// context source is reachable (checked at most every 30 s); else 503 with reasons.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Ready", body = ReadyBody),
    (status = 503, description = "Not ready, with reasons", body = ReadyBody),
))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let reasons = state.readiness.reasons(&state).await;
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(ReadyBody {
            ready: reasons.is_empty(),
            reasons,
        }),
    )
        .into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("api_key" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(_: MetricsAccess) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::handle().render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi() -> Response {
    // Built once, from the same route list as the router, when first asked for.
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        let (_, document) = crate::app::api().split_for_parts();
        document.to_pretty_json().unwrap_or_default()
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.as_str(),
    )
        .into_response()
}

//! `GET /ready`, `GET /metrics`, `GET /openapi.json`.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::http::access::MetricsAccess;
use crate::service::readiness::Report;

/// Readiness: 200 when this process can serve requests (its storage is writable); 503 with
/// reasons otherwise. Whether Asana is connected and the context server reachable is
/// reported in the body (and in metrics) but does not make the service unready.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Ready; `connected` and `attention` say what else needs doing", body = Report),
    (status = 503, description = "Not ready, with reasons", body = Report),
))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let report = state.readiness.report(&state).await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("api_key" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(_: MetricsAccess) -> Response {
    crate::telemetry::metrics::log_lines_dropped(crate::telemetry::log_writer::dropped());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics::handle().render(),
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

//! `GET /contexts`: what the configured source offers, for people choosing a name.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use crate::app::AppState;
use crate::context::Catalog;
use crate::http::access::ApiAccess;
use crate::http::error::ApiError;

/// Lists the source's resources (name, uri, mime type) and prompts (name, arguments).
#[utoipa::path(get, path = "/contexts", tag = "contexts",
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Resources and prompts", body = Catalog),
        (status = 401, description = "Missing or wrong API key", body = crate::http::openapi::ErrorBody),
        (status = 502, description = "The context server failed", body = crate::http::openapi::ErrorBody),
        (status = 504, description = "The context server did not answer in time", body = crate::http::openapi::ErrorBody),
        (status = 501, description = "The REST contract has no listing", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "No context source configured", body = crate::http::openapi::ErrorBody),
    ))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _: ApiAccess,
) -> Result<Json<Catalog>, ApiError> {
    let source = state
        .attacher
        .context
        .as_ref()
        .ok_or_else(|| ApiError::NotConfigured(vec!["MCP_SERVER_URL or MCP_SERVER_COMMAND"]))?;
    Ok(Json(source.catalog().await?))
}

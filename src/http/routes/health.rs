//! `GET /health`: liveness, with no upstream calls.

use axum::Json;
use serde_json::{Value, json};

/// Liveness: always 200 `{"status":"ok"}` while the process serves requests.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process serves requests", body = Object, example = json!({"status": "ok"}))))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

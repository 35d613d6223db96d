//! `GET /health`: liveness, with no upstream calls.

use axum::Json;
use serde_json::{Value, json};

/// Always 200 `{"status":"ok"}` while the process serves requests.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

//! `POST /asana/attach-context`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::app::AppState;
use crate::attach::{Attached, attach_context};
use crate::domain::{AttachRequest, AttachRequestBody};
use crate::error::{ApiError, ApiJson};

/// Posts the named context as a comment on the task; 201 with the story gid.
pub async fn attach(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<AttachRequestBody>,
) -> Result<(StatusCode, Json<Attached>), ApiError> {
    let request = AttachRequest::try_from(body)?;
    let attached = attach_context(&state, &request).await?;
    Ok((StatusCode::CREATED, Json(attached)))
}

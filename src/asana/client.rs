//! Asana's REST API: the calls the linker makes, each checking the status it gets back.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::token_file::AsanaUser;
use crate::domain::TaskGid;

/// A failed call to Asana's REST API, in Asana's terms.
#[derive(Debug, thiserror::Error)]
pub enum AsanaError {
    /// 401: the token is expired or revoked.
    #[error("Asana refused the access token")]
    Unauthorized,
    /// 404: no such task, or not visible to the user.
    #[error("Asana has no task {task_gid}: {message}")]
    NotFound {
        /// The task asked for.
        task_gid: String,
        /// Asana's message.
        message: String,
    },
    /// 403 or 402: the user may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 400: Asana found the request malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 429: over Asana's rate limit.
    #[error("Asana rate limit reached")]
    RateLimited {
        /// Seconds to wait, from `Retry-After`.
        retry_after: Option<u64>,
    },
    /// Any other status.
    #[error("Asana answered {status}: {message}")]
    Status {
        /// The status Asana answered.
        status: StatusCode,
        /// Asana's message, if any.
        message: String,
    },
    /// No answer within the timeout.
    #[error("Asana did not answer in time")]
    Timeout,
    /// The request could not be sent or the answer not read.
    #[error("cannot reach Asana")]
    Transport(#[source] reqwest::Error),
    /// A 2xx answer without the expected fields.
    #[error("unexpected answer from Asana: {0}")]
    UnexpectedResponse(String),
}

impl From<reqwest::Error> for AsanaError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else {
            Self::Transport(error)
        }
    }
}

/// A story (comment) Asana created.
#[derive(Debug, Clone, Deserialize)]
pub struct Story {
    /// The story's gid.
    pub gid: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    message: String,
}

/// Client for Asana's REST API at a base URL.
#[derive(Debug, Clone)]
pub struct AsanaClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl AsanaClient {
    /// A client for the API at `base` (normally `https://app.asana.com/api/1.0`).
    pub fn new(http: reqwest::Client, base: &Url, timeout: Duration) -> Self {
        Self {
            http,
            base: base.as_str().trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    /// Posts `text` as a comment on the task.
    #[tracing::instrument(skip_all, fields(task_gid = %task))]
    pub async fn create_story(
        &self,
        token: &SecretString,
        task: &TaskGid,
        text: &str,
    ) -> Result<Story, AsanaError> {
        let response = self
            .http
            .post(format!("{}/tasks/{task}/stories", self.base))
            .bearer_auth(token.expose_secret())
            .timeout(self.timeout)
            .json(&json!({"data": {"text": text}}))
            .send()
            .await?;
        read_data(response, task.as_str()).await
    }

    /// The user the token belongs to.
    #[tracing::instrument(skip_all)]
    pub async fn me(&self, token: &SecretString) -> Result<AsanaUser, AsanaError> {
        let response = self
            .http
            .get(format!("{}/users/me", self.base))
            .query(&[("opt_fields", "gid,name,email")])
            .bearer_auth(token.expose_secret())
            .timeout(self.timeout)
            .send()
            .await?;
        read_data(response, "").await
    }
}

async fn read_data<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    task_gid: &str,
) -> Result<T, AsanaError> {
    let status = response.status();
    if status.is_success() {
        let body = response.bytes().await?;
        return serde_json::from_slice::<Envelope<T>>(&body)
            .map(|envelope| envelope.data)
            .map_err(|e| AsanaError::UnexpectedResponse(e.to_string()));
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let message = response
        .json::<ErrorBody>()
        .await
        .ok()
        .and_then(|body| body.errors.into_iter().next())
        .map(|item| item.message)
        .unwrap_or_default();
    Err(match status {
        StatusCode::UNAUTHORIZED => AsanaError::Unauthorized,
        StatusCode::NOT_FOUND => AsanaError::NotFound {
            task_gid: task_gid.to_owned(),
            message,
        },
        StatusCode::FORBIDDEN | StatusCode::PAYMENT_REQUIRED => AsanaError::Forbidden(message),
        StatusCode::BAD_REQUEST => AsanaError::BadRequest(message),
        StatusCode::TOO_MANY_REQUESTS => AsanaError::RateLimited { retry_after },
        status => AsanaError::Status { status, message },
    })
}

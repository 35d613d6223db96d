//! Asana's REST API: the calls the linker makes, each checking the status it gets back.
//! Every call waits at its token's 429 gate; writes also take a slot of the write limit.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Semaphore;
use url::Url;

use super::token_file::AsanaUser;
use crate::domain::{CustomFieldGid, TaskGid};
use crate::render::CommentBody;
use crate::telemetry::metrics;
use crate::util::base_url::BaseUrl;
use crate::util::retry::{Retry, retry_after};

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
    /// No connection could be made: nothing reached Asana.
    #[error("cannot connect to Asana")]
    Unreachable(#[source] reqwest::Error),
    /// The connection failed after the request went out, or the answer could not be read.
    #[error("the connection to Asana failed")]
    Transport(#[source] reqwest::Error),
    /// A 2xx answer without the expected fields.
    #[error("unexpected answer from Asana: {0}")]
    UnexpectedResponse(String),
    /// A comment was sent, Asana's answer is unknown, and no comment with its marker could be
    /// found (yet): it may have been posted.
    #[error("the comment may have been posted: {0}")]
    MaybePosted(#[source] Box<AsanaError>),
}

impl From<reqwest::Error> for AsanaError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_connect() {
            Self::Unreachable(error)
        } else if error.is_timeout() {
            Self::Timeout
        } else {
            Self::Transport(error)
        }
    }
}

impl AsanaError {
    /// What the retry policy may do after this failure (for a write, only once it is known
    /// that nothing was created).
    pub fn retry(&self) -> Retry {
        match self {
            Self::RateLimited {
                retry_after: Some(secs),
            } => Retry::After(Duration::from_secs(*secs)),
            Self::RateLimited { retry_after: None } | Self::Unreachable(_) => Retry::Backoff,
            Self::Status { status, .. } if is_transient(*status) => Retry::Backoff,
            _ => Retry::No,
        }
    }

    /// Whether a write that failed this way may still have been carried out by Asana.
    pub fn may_have_written(&self) -> bool {
        match self {
            Self::Timeout | Self::Transport(_) | Self::MaybePosted(_) => true,
            Self::Status { status, .. } => status.is_server_error(),
            _ => false,
        }
    }

    /// Whether Asana answered: its work on the request is over, so a read now sees all of it.
    pub fn answered(&self) -> bool {
        matches!(self, Self::Status { .. })
    }
}

fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// A story as listed on a task, for finding a comment a failed attempt created.
#[derive(Debug, Clone, Deserialize)]
pub struct ListedStory {
    /// The story's gid.
    pub gid: String,
    /// Plain text, for comments.
    #[serde(default)]
    pub text: Option<String>,
    /// Rich text, for comments.
    #[serde(default)]
    pub html_text: Option<String>,
    /// `comment_added` for comments.
    #[serde(default)]
    pub resource_subtype: Option<String>,
}

/// A story's author.
#[derive(Debug, Clone, Deserialize)]
pub struct Author {
    /// The user's gid.
    pub gid: String,
}

/// One page of a task's stories.
#[derive(Debug, Deserialize)]
pub struct StoriesPage {
    /// The stories, oldest first.
    pub data: Vec<ListedStory>,
    /// The next page's offset, if any.
    #[serde(default)]
    pub next_page: Option<NextPage>,
}

/// Asana's pagination token.
#[derive(Debug, Deserialize)]
pub struct NextPage {
    /// Pass as `offset` to get the next page.
    pub offset: String,
}

/// A story read for webhook rules.
#[derive(Debug, Clone, Deserialize)]
pub struct StoryDetails {
    /// Plain text.
    #[serde(default)]
    pub text: Option<String>,
    /// `comment_added` for comments.
    #[serde(default)]
    pub resource_subtype: Option<String>,
    /// The task it is on.
    #[serde(default)]
    pub target: Option<Author>,
    /// Who wrote it.
    #[serde(default)]
    pub created_by: Option<Author>,
}

/// Asana's answer to creating a webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedWebhook {
    /// The webhook.
    pub data: WebhookInfo,
    /// The secret Asana sent in the handshake, echoed for comparison.
    #[serde(rename = "X-Hook-Secret", default)]
    pub secret: Option<String>,
}

/// A webhook as Asana lists it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct WebhookInfo {
    /// Its gid.
    pub gid: String,
    /// Where events go.
    #[serde(default)]
    pub target: Option<String>,
    /// Whether Asana still delivers.
    #[serde(default)]
    pub active: Option<bool>,
}

/// Only digits go into a URL path.
fn path_gid(gid: &str) -> Result<&str, AsanaError> {
    if !gid.is_empty() && gid.len() <= 32 && gid.bytes().all(|b| b.is_ascii_digit()) {
        Ok(gid)
    } else {
        Err(AsanaError::BadRequest(format!(
            "{gid:?} is not an Asana gid"
        )))
    }
}

/// Asana's limits, shared by every call: a 429 pause per token, and the write slots.
#[derive(Debug)]
struct Limits {
    /// Per token (by [`limit_key`]): closed until this instant after a 429 with `Retry-After`.
    gates: Mutex<HashMap<String, Instant>>,
    /// Slots for writes in flight.
    writes: Semaphore,
    /// The latest pause Asana asked of this process (token key, end), for other replicas.
    asked: tokio::sync::watch::Sender<Option<(String, SystemTime)>>,
}

/// The key a token's pause is kept under: a short SHA-256 of it, never the token, and the
/// same on every replica that holds the same connection.
fn limit_key(token: &SecretString) -> String {
    let mut key = crate::util::digest::sha256_hex(token.expose_secret());
    key.truncate(16);
    key
}

impl Limits {
    /// Waits while Asana has asked `token` to hold off, but only up to `max_wait`: a longer
    /// wait answers at once with the time still to wait, so no caller hangs on a long
    /// `Retry-After`. Other tokens pass.
    async fn pass_gate(&self, token: &SecretString, max_wait: Duration) -> Result<(), AsanaError> {
        loop {
            let until = {
                let gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
                // No pause anywhere (the usual case): no hashing either.
                if gates.is_empty() {
                    return Ok(());
                }
                gates.get(&limit_key(token)).copied()
            };
            let now = Instant::now();
            match until {
                Some(until) if until > now => {
                    let left = until - now;
                    if left > max_wait {
                        return Err(AsanaError::RateLimited {
                            retry_after: Some(left.as_secs_f64().ceil() as u64),
                        });
                    }
                    tokio::time::sleep_until(until.into()).await
                }
                _ => return Ok(()),
            }
        }
    }

    fn close_gate_for(&self, key: String, wait: Duration) {
        let now = Instant::now();
        let until = now + wait;
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        gates.retain(|_, end| *end > now);
        let gate = gates.entry(key).or_insert(until);
        if *gate < until {
            *gate = until;
        }
    }
}

/// A story (comment) Asana created.
#[derive(Debug, Clone, Deserialize)]
pub struct Story {
    /// The story's gid.
    pub gid: String,
}

#[derive(Deserialize, Serialize)]
struct Envelope<T> {
    data: T,
}

/// The body of a new comment.
#[derive(Serialize)]
struct NewStory<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    html_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_pinned: Option<bool>,
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
#[derive(Debug)]
pub struct AsanaClient {
    http: reqwest::Client,
    base: BaseUrl,
    timeout: Duration,
    /// Longest a call waits at the 429 gate (the retry budget, or the request deadline).
    max_gate_wait: Duration,
    limits: Limits,
}

impl AsanaClient {
    /// A client for the API at `base` (normally `https://app.asana.com/api/1.0`) allowing
    /// `max_writes` writes in flight, waiting at most `max_gate_wait` after a 429.
    pub fn new(
        http: reqwest::Client,
        base: &Url,
        timeout: Duration,
        max_writes: usize,
        max_gate_wait: Duration,
    ) -> Self {
        Self {
            http,
            base: BaseUrl::new(base),
            timeout,
            max_gate_wait,
            limits: Limits {
                gates: Mutex::new(HashMap::new()),
                writes: Semaphore::new(max_writes),
                asked: tokio::sync::watch::Sender::new(None),
            },
        }
    }

    /// Each pause Asana asks of this process (a 429 with `Retry-After`): the token's key and
    /// the pause's end, as it happens, for sharing it with other replicas.
    pub fn pauses_asked(&self) -> tokio::sync::watch::Receiver<Option<(String, SystemTime)>> {
        self.limits.asked.subscribe()
    }

    /// Holds the calls of the token keyed `key` until `until` (a pause another replica was
    /// asked for).
    pub fn pause_until(&self, key: &str, until: SystemTime) {
        if let Ok(wait) = until.duration_since(SystemTime::now()) {
            self.limits.close_gate_for(key.to_owned(), wait);
        }
    }

    /// Sends through the token's gate (and the write limit); a 429 with `Retry-After` closes
    /// that token's gate, on this replica at once and on the others within a second.
    async fn send(
        &self,
        request: RequestBuilder,
        token: &SecretString,
        write: bool,
    ) -> Result<reqwest::Response, AsanaError> {
        self.limits.pass_gate(token, self.max_gate_wait).await?;
        let _slot = match write {
            true => self.limits.writes.acquire().await.ok(),
            false => None,
        };
        // The gate may have closed while this request waited for a slot.
        self.limits.pass_gate(token, self.max_gate_wait).await?;
        let response = request
            .bearer_auth(token.expose_secret())
            .timeout(self.timeout)
            .send()
            .await
            .inspect_err(|e| metrics::upstream("asana", metrics::Outcome::of_error(e)))?;
        metrics::upstream("asana", metrics::Outcome::of_status(response.status()));
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            metrics::rate_limited();
        }
        if response.status() == StatusCode::TOO_MANY_REQUESTS
            && let Some(secs) = retry_after(response.headers())
        {
            tracing::warn!(
                retry_after = secs,
                "Asana rate limit: holding this connection's requests"
            );
            let key = limit_key(token);
            self.limits
                .close_gate_for(key.clone(), Duration::from_secs(secs));
            self.limits
                .asked
                .send_replace(Some((key, SystemTime::now() + Duration::from_secs(secs))));
        }
        Ok(response)
    }

    /// One page of the task's stories with the fields needed to recognise a comment.
    #[tracing::instrument(level = "debug", skip_all, fields(task_gid = %task))]
    pub async fn stories_page(
        &self,
        token: &SecretString,
        task: &TaskGid,
        offset: Option<&str>,
    ) -> Result<StoriesPage, AsanaError> {
        let mut query = vec![
            ("limit", "100"),
            ("opt_fields", "text,html_text,resource_subtype"),
        ];
        if let Some(offset) = offset {
            query.push(("offset", offset));
        }
        let request = self
            .http
            .get(self.base.join(&format!("/tasks/{task}/stories")))
            .query(&query);
        let response = self.send(request, token, false).await?;
        read_body(response, task.as_str()).await
    }

    /// Posts a comment on the task (`html_text` or `text`), pinned if asked.
    #[tracing::instrument(level = "debug", skip_all, fields(task_gid = %task))]
    pub async fn create_story(
        &self,
        token: &SecretString,
        task: &TaskGid,
        body: &CommentBody,
        pin: bool,
    ) -> Result<Story, AsanaError> {
        let (html_text, text) = match body {
            CommentBody::Html(html) => (Some(html.as_str()), None),
            CommentBody::Text(text) => (None, Some(text.as_str())),
        };
        let data = NewStory {
            html_text,
            text,
            is_pinned: pin.then_some(true),
        };
        let request = self
            .http
            .post(self.base.join(&format!("/tasks/{task}/stories")))
            .json(&Envelope { data });
        let response = self.send(request, token, true).await?;
        read_data(response, task.as_str()).await
    }

    /// Sets a text custom field of the task.
    #[tracing::instrument(level = "debug", skip_all, fields(task_gid = %task, custom_field_gid = %field.as_str()))]
    pub async fn set_text_field(
        &self,
        token: &SecretString,
        task: &TaskGid,
        field: &CustomFieldGid,
        text: &str,
    ) -> Result<(), AsanaError> {
        let request = self
            .http
            .put(self.base.join(&format!("/tasks/{task}")))
            .json(&json!({"data": {"custom_fields": {field.as_str(): text}}}));
        let response = self.send(request, token, true).await?;
        read_data::<serde_json::Value>(response, task.as_str())
            .await
            .map(|_| ())
    }

    /// A story's text, subtype and task, for webhook rules.
    #[tracing::instrument(level = "debug", skip_all, fields(story_gid))]
    pub async fn story(
        &self,
        token: &SecretString,
        story_gid: &str,
    ) -> Result<StoryDetails, AsanaError> {
        let request = self
            .http
            .get(
                self.base
                    .join(&format!("/stories/{}", path_gid(story_gid)?)),
            )
            .query(&[("opt_fields", "text,resource_subtype,target,created_by")]);
        let response = self.send(request, token, false).await?;
        read_data(response, "").await
    }

    /// Creates a webhook; Asana performs the handshake with `target` before answering.
    #[tracing::instrument(skip_all, fields(resource))]
    pub async fn create_webhook(
        &self,
        token: &SecretString,
        resource: &str,
        target: &str,
        filters: serde_json::Value,
    ) -> Result<CreatedWebhook, AsanaError> {
        let request = self.http.post(self.base.join("/webhooks")).json(&json!({
            "data": {"resource": resource, "target": target, "filters": filters}
        }));
        let response = self.send(request, token, true).await?;
        read_body(response, "").await
    }

    /// The webhooks of a workspace.
    pub async fn list_webhooks(
        &self,
        token: &SecretString,
        workspace: &str,
    ) -> Result<Vec<WebhookInfo>, AsanaError> {
        let request = self.http.get(self.base.join("/webhooks")).query(&[
            ("workspace", workspace),
            ("limit", "100"),
            ("opt_fields", "resource.name,target,active"),
        ]);
        let response = self.send(request, token, false).await?;
        read_data(response, "").await
    }

    /// Deletes a webhook.
    pub async fn delete_webhook(
        &self,
        token: &SecretString,
        webhook_gid: &str,
    ) -> Result<(), AsanaError> {
        let request = self.http.delete(
            self.base
                .join(&format!("/webhooks/{}", path_gid(webhook_gid)?)),
        );
        let response = self.send(request, token, true).await?;
        read_data::<serde_json::Value>(response, "")
            .await
            .map(|_| ())
    }

    /// Tasks of a workspace whose names match `query` (Asana's typeahead: on every plan,
    /// unlike the full-text search), at most `count`.
    #[tracing::instrument(level = "debug", skip_all, fields(workspace))]
    pub async fn find_tasks(
        &self,
        token: &SecretString,
        workspace: &str,
        query: &str,
        count: u8,
    ) -> Result<Vec<FoundTask>, AsanaError> {
        let request = self
            .http
            .get(
                self.base
                    .join(&format!("/workspaces/{}/typeahead", path_gid(workspace)?)),
            )
            .query(&[
                ("resource_type", "task"),
                ("query", query),
                ("count", &count.to_string()),
                ("opt_fields", "name,completed,permalink_url"),
            ]);
        let response = self.send(request, token, false).await?;
        read_data(response, "").await
    }

    /// The user the token belongs to.
    pub async fn me(&self, token: &SecretString) -> Result<AsanaUser, AsanaError> {
        Ok(self.profile(token).await?.user)
    }

    /// The user the token belongs to, and the workspaces they can reach.
    #[tracing::instrument(skip_all)]
    pub async fn profile(&self, token: &SecretString) -> Result<Profile, AsanaError> {
        let request = self
            .http
            .get(self.base.join("/users/me"))
            .query(&[("opt_fields", "name,email,workspaces,workspaces.name")]);
        let response = self.send(request, token, false).await?;
        read_data(response, "").await
    }
}

/// A task found by name.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct FoundTask {
    /// The task's gid, to attach to.
    pub gid: String,
    /// Its name.
    pub name: String,
    /// Whether it is done.
    #[serde(default)]
    pub completed: bool,
    /// Its page in Asana.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permalink_url: Option<String>,
}

/// A user as `/users/me` describes them.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Profile {
    /// Who they are.
    #[serde(flatten)]
    pub user: AsanaUser,
    /// The workspaces they can reach.
    #[serde(default)]
    pub workspaces: Vec<crate::domain::Workspace>,
}

async fn read_data<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    task_gid: &str,
) -> Result<T, AsanaError> {
    read_body::<Envelope<T>>(response, task_gid)
        .await
        .map(|envelope| envelope.data)
}

async fn read_body<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    task_gid: &str,
) -> Result<T, AsanaError> {
    let status = response.status();
    if status.is_success() {
        let body = response.bytes().await?;
        return serde_json::from_slice::<T>(&body)
            .map_err(|e| AsanaError::UnexpectedResponse(e.to_string()));
    }
    let retry_after = retry_after(response.headers());
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

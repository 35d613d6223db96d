//! The seed's REST contract: `GET {MCP_SERVER_URL}/contexts/{name}` → `{"context_text": "…"}`.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{Context, ContextError, SourceRef};
use crate::domain::ContextName;
use crate::telemetry::metrics;
use crate::util::base_url::BaseUrl;

#[derive(Deserialize)]
struct ContextBody {
    context_text: String,
}

/// Refuses names a proxy that decodes `%2F` (or `%5C`, or `%2E%2E`) before routing would
/// turn into another path: `..%2F_log` must never reach `/_log`.
fn check_name(name: &ContextName) -> Result<(), ContextError> {
    let decoded = percent_encoding::percent_decode_str(name.as_str()).decode_utf8_lossy();
    let splits =
        |text: &str| text.contains('/') || text.contains('\\') || text == "." || text == "..";
    if splits(name.as_str()) || splits(&decoded) {
        return Err(ContextError::InvalidName(format!(
            "a REST context name must not contain \"/\" or \"\\\" (even percent-encoded), nor be \".\" or \"..\": {:?}",
            name.as_str()
        )));
    }
    Ok(())
}

/// A context server speaking the seed's REST contract.
#[derive(Debug, Clone)]
pub struct RestContextSource {
    http: reqwest::Client,
    base: BaseUrl,
    auth_token: Option<SecretString>,
    timeout: Duration,
    host: Option<String>,
}

impl RestContextSource {
    /// A source at `base`; a path prefix in `base` is kept.
    pub fn new(
        http: reqwest::Client,
        base: &Url,
        auth_token: Option<SecretString>,
        timeout: Duration,
    ) -> Self {
        Self {
            http,
            base: BaseUrl::new(base),
            auth_token,
            timeout,
            host: super::host_of(base),
        }
    }

    /// Whether the server answers HTTP at its base URL (any status will do).
    pub async fn probe(&self) -> Result<(), ContextError> {
        self.http
            .get(self.base.as_str())
            .timeout(self.timeout)
            .send()
            .await
            .map(|_| ())
            .map_err(ContextError::from)
    }

    /// Fetches one context; the name travels as one percent-encoded path segment.
    #[tracing::instrument(level = "debug", skip_all, fields(context_name = %name))]
    pub async fn fetch(&self, name: &ContextName) -> Result<Context, ContextError> {
        check_name(name)?;
        let url = self
            .base
            .join(&format!("/contexts/{}", name.as_path_segment()));
        let mut request = self.http.get(url).timeout(self.timeout);
        if let Some(token) = &self.auth_token {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request
            .send()
            .await
            .inspect_err(|e| metrics::upstream("context", metrics::Outcome::of_error(e)))?;
        metrics::upstream("context", metrics::Outcome::of_status(response.status()));
        match response.status() {
            status if status.is_success() => {
                let body = response.bytes().await?;
                let body: ContextBody = serde_json::from_slice(&body)
                    .map_err(|e| ContextError::UnexpectedResponse(e.to_string()))?;
                Ok(Context {
                    text: body.context_text,
                    source: SourceRef::Rest {
                        name: name.to_string(),
                    },
                    mime_type: None,
                    server_host: self.host.clone(),
                })
            }
            StatusCode::NOT_FOUND => Err(ContextError::NotFound {
                name: name.to_string(),
                suggestions: Vec::new(),
            }),
            status => Err(ContextError::Status(status)),
        }
    }
}

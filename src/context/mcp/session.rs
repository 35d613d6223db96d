//! One MCP client session per server, shared by every request: connected on first use with
//! either protocol era, re-established once when the transport is lost.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rmcp::model::{ClientCapabilities, ClientConfig, ErrorData, Implementation, ProtocolVersion};
use rmcp::service::{Peer, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceError};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::telemetry::metrics;
use url::Url;

use crate::context::ContextError;

/// How to reach an MCP server.
#[derive(Debug, Clone)]
pub enum McpTarget {
    /// Streamable HTTP at an endpoint such as `http://host/mcp`.
    Http {
        /// The MCP endpoint.
        url: Url,
        /// Sent as `Authorization: Bearer …` on every request.
        auth_token: Option<SecretString>,
    },
    /// A child process speaking MCP on stdin/stdout: program and arguments.
    Stdio(Vec<String>),
}

impl McpTarget {
    /// The endpoint URL (without credentials) or the stdio program, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Http { url, .. } => crate::context::without_credentials(url.as_str()),
            // Only the program: its arguments may carry tokens.
            Self::Stdio(words) => format!("stdio:{}", words.first().map_or("", String::as_str)),
        }
    }

    /// The server's `host[:port]`; `None` for a command.
    pub fn host(&self) -> Option<String> {
        match self {
            Self::Http { url, .. } => crate::context::host_of(url),
            Self::Stdio(_) => None,
        }
    }
}

type Client = RunningService<RoleClient, ClientConfig>;

/// A lazily connected, shared MCP client.
#[derive(Debug)]
pub struct Session {
    target: McpTarget,
    http: reqwest::Client,
    timeout: Duration,
    /// The live client and its generation; held while connecting, so one handshake serves
    /// every request that arrives meanwhile.
    current: Mutex<Option<(u64, Arc<Client>)>>,
    generations: AtomicU64,
}

impl Session {
    /// A session to `target`; nothing is sent until the first call.
    pub fn new(target: McpTarget, http: reqwest::Client, timeout: Duration) -> Self {
        Self {
            target,
            http,
            timeout,
            current: Mutex::new(None),
            generations: AtomicU64::new(0),
        }
    }

    /// The server this session talks to.
    pub fn target(&self) -> &McpTarget {
        &self.target
    }

    /// Connects now if not connected (used by `auto` to probe for MCP).
    pub async fn connect(&self) -> Result<(), ContextError> {
        self.client().await.map(|_| ())
    }

    /// Runs one MCP request on the shared client, bounded by the timeout. The outer error is
    /// ours (timeout, transport); the inner one is the server's JSON-RPC error, for the caller
    /// to interpret. A lost session is re-established and the request retried once.
    pub async fn call<T, F, Fut>(&self, op: F) -> Result<Result<T, ErrorData>, ContextError>
    where
        F: Fn(Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let mut retried = false;
        loop {
            let (generation, peer) = self.client().await?;
            let outcome = tokio::time::timeout(self.timeout, op(peer))
                .await
                .map_err(|_| {
                    metrics::upstream("mcp", metrics::Outcome::Timeout);
                    ContextError::Timeout
                })?;
            metrics::upstream(
                "mcp",
                match &outcome {
                    Ok(_) => metrics::Outcome::Ok,
                    Err(ServiceError::McpError(_)) => metrics::Outcome::Refused,
                    Err(_) => metrics::Outcome::Failed,
                },
            );
            match outcome {
                Ok(value) => return Ok(Ok(value)),
                Err(ServiceError::McpError(error)) => return Ok(Err(error)),
                Err(ServiceError::Timeout { .. }) => return Err(ContextError::Timeout),
                Err(error) if !retried && session_lost(&error) => {
                    tracing::warn!(server = %self.target.describe(), %error, "MCP session lost; reconnecting once");
                    self.discard(generation).await;
                    retried = true;
                }
                Err(error) => return Err(ContextError::Mcp(crate::util::cause_chain(&error))),
            }
        }
    }

    async fn client(&self) -> Result<(u64, rmcp::service::Peer<RoleClient>), ContextError> {
        let mut current = self.current.lock().await;
        if let Some((generation, client)) = current.as_ref()
            && !client.is_closed()
        {
            return Ok((*generation, client.peer().clone()));
        }
        let client = tokio::time::timeout(self.timeout, self.handshake())
            .await
            .map_err(|_| ContextError::Timeout)??;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let peer = client.peer().clone();
        *current = Some((generation, Arc::new(client)));
        Ok((generation, peer))
    }

    async fn discard(&self, generation: u64) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            // Dropping the client cancels its session and, for stdio, ends the child.
            *current = None;
        }
    }

    async fn handshake(&self) -> Result<Client, ContextError> {
        let config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcp-asana-linker", env!("CARGO_PKG_VERSION")),
        );
        // Prefer the 2026-07-28 era; fall back to the legacy initialize handshake.
        let lifecycle = ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: Some(ProtocolVersion::V_2025_11_25),
        };
        // A failed handshake counts as unreachable, so the retry policy applies to it (a
        // server that is restarting); `auto` probes with `connect`, outside the policy.
        let handshake_failed = |error: &dyn std::error::Error| {
            ContextError::Unreachable(format!(
                "MCP handshake failed: {}",
                crate::util::cause_chain(error)
            ))
        };
        let client = match &self.target {
            McpTarget::Http { url, auth_token } => {
                let mut config_http = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                if let Some(token) = auth_token {
                    config_http = config_http.auth_header(token.expose_secret());
                }
                let transport =
                    StreamableHttpClientTransport::with_client(self.http.clone(), config_http);
                config
                    .serve_with_lifecycle(transport, lifecycle)
                    .await
                    .map_err(|e| handshake_failed(&e))?
            }
            McpTarget::Stdio(words) => {
                let (program, args) = words
                    .split_first()
                    .ok_or_else(|| ContextError::Mcp("MCP_SERVER_COMMAND is empty".to_owned()))?;
                let mut command = tokio::process::Command::new(program);
                command.args(args);
                let transport = TokioChildProcess::new(command)
                    .map_err(|e| ContextError::Mcp(format!("cannot start {program}: {e}")))?;
                config
                    .serve_with_lifecycle(transport, lifecycle)
                    .await
                    .map_err(|e| handshake_failed(&e))?
            }
        };
        let version = client
            .peer()
            .peer_info()
            .map(|info| format!("{:?}", info.protocol_version))
            .unwrap_or_default();
        tracing::info!(server = %self.target.describe(), %version, "MCP session established");
        Ok(client)
    }
}

/// Errors after which a new session may succeed: the transport closed or could not send
/// (server restarted, child exited, session expired).
fn session_lost(error: &ServiceError) -> bool {
    matches!(
        error,
        ServiceError::TransportClosed
            | ServiceError::TransportSend(_)
            | ServiceError::Cancelled { .. }
    )
}

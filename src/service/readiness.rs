//! Readiness: whether this process can serve requests (settings valid, listener up, its own
//! storage writable). What it depends on but does not control, a consent not given yet or an
//! unreachable context server, is reported beside it (and in metrics) without making the pod
//! unready: a Service must keep routing the consent to a fresh pod, and an outage of the
//! context server must not take every pod out of rotation at once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::app::AppState;

/// How long a reachability check is reused.
const CHECK_TTL: Duration = Duration::from_secs(30);

/// What `/ready` and `check` report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Whether this process can serve requests.
    pub ready: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Whether an Asana account is connected with a usable token.
    pub connected: bool,
    /// `reachable`, `unreachable` or `not_configured`.
    pub context_server: &'static str,
    /// What needs attention although the process is ready (not connected, unreachable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<String>,
}

/// The readiness checks, with the reachability of the context source cached.
#[derive(Debug)]
pub struct Readiness {
    /// A file in the service's data directory, opened for appending to prove it is writable.
    storage_probe: PathBuf,
    reachability: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    /// Checks that `storage_probe`, a file the service appends to, can be opened for writing.
    pub fn new(storage_probe: PathBuf) -> Self {
        Self {
            storage_probe,
            reachability: Mutex::new(None),
        }
    }

    /// The current report; also sets the `linker_asana_connected` and
    /// `linker_context_server_reachable` gauges.
    pub async fn report(&self, state: &AppState) -> Report {
        let mut reasons = Vec::new();
        let mut attention = Vec::new();
        if let Err(error) = self.storage_writable().await {
            reasons.push(format!(
                "storage not writable ({}): {error}",
                self.storage_probe.display()
            ));
        }
        if !state.missing_oauth.is_empty() {
            attention.push(format!(
                "OAuth settings missing: {}",
                state.missing_oauth.join(", ")
            ));
        }
        let connected = match state.attacher.tokens.status() {
            Ok(()) => true,
            Err(reason) => {
                attention.push(format!("Asana: {reason}"));
                false
            }
        };
        let context_server = match &state.attacher.context {
            None => {
                attention.push("MCP_SERVER_URL or MCP_SERVER_COMMAND is not set".to_owned());
                "not_configured"
            }
            Some(source) => match self.reachable(source).await {
                Ok(()) => "reachable",
                Err(reason) => {
                    attention.push(reason);
                    "unreachable"
                }
            },
        };
        crate::telemetry::metrics::readiness(connected, context_server == "reachable");
        Report {
            ready: reasons.is_empty(),
            reasons,
            connected,
            context_server,
            attention,
        }
    }

    async fn storage_writable(&self) -> std::io::Result<()> {
        let path = self.storage_probe.clone();
        let open = move || {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
                .map(drop)
        };
        tokio::task::spawn_blocking(open)
            .await
            .map_err(std::io::Error::other)?
    }

    async fn reachable(&self, source: &crate::context::ContextSource) -> Result<(), String> {
        let mut cached = self.reachability.lock().await;
        if let Some((at, result)) = cached.as_ref()
            && at.elapsed() < CHECK_TTL
        {
            return result.clone();
        }
        let result = source
            .probe()
            .await
            .map_err(|e| format!("context server unreachable: {e}"));
        *cached = Some((Instant::now(), result.clone()));
        result
    }
}

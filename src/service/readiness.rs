//! Readiness: whether this process can serve requests (settings valid, listener up, its
//! store answering). What it depends on but does not control, a consent not given yet or an
//! unreachable context server, is reported beside it (and in metrics) without making the pod
//! unready: a Service must keep routing the consent to a fresh pod, and an outage of the
//! context server must not take every pod out of rotation at once.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::app::AppState;
use crate::store::{ConnectionState, Store, StoreError};

/// How long a reachability check is reused.
const CHECK_TTL: Duration = Duration::from_secs(30);
/// How long the store may take to answer a probe.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// How many people's connections stand where.
    pub connections: ConnectionCounts,
    /// What needs attention although the process is ready (not connected, unreachable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<String>,
}

/// Connections by state.
#[derive(Debug, Default, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct ConnectionCounts {
    /// With a valid access token.
    pub healthy: u32,
    /// Whose access token expired (refreshed on next use).
    pub expired: u32,
    /// Disconnected, or refused by Asana.
    pub revoked: u32,
}

impl ConnectionCounts {
    /// Counts the connections in `store`.
    pub async fn read(store: &Store) -> Result<Self, StoreError> {
        let mut counts = Self::default();
        for connection in store.list_connections().await? {
            *match connection.state {
                ConnectionState::Healthy => &mut counts.healthy,
                ConnectionState::Expired => &mut counts.expired,
                ConnectionState::Revoked => &mut counts.revoked,
            } += 1;
        }
        Ok(counts)
    }
}

/// The readiness checks, with the reachability of the context source cached.
#[derive(Debug)]
pub struct Readiness {
    store: Store,
    reachability: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    /// Checks that `store` answers.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            reachability: Mutex::new(None),
        }
    }

    /// The current report; also sets the `linker_asana_connected` and
    /// `linker_context_server_reachable` gauges.
    pub async fn report(&self, state: &AppState) -> Report {
        let mut reasons = Vec::new();
        let mut attention = Vec::new();
        match tokio::time::timeout(STORE_PROBE_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => reasons.push(format!(
                "store {} unusable: {}",
                self.store.url(),
                crate::util::cause_chain(&error)
            )),
            Err(_) => reasons.push(format!(
                "store {} did not answer within {} s",
                self.store.url(),
                STORE_PROBE_TIMEOUT.as_secs()
            )),
        }
        if !state.missing_oauth.is_empty() {
            attention.push(format!(
                "OAuth settings missing: {}",
                state.missing_oauth.join(", ")
            ));
        }
        let connected = match state.attacher.connections.status().await {
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
        // Counted only from a store that just answered the probe.
        let mut connections = ConnectionCounts::default();
        if reasons.is_empty() {
            match ConnectionCounts::read(&self.store).await {
                Ok(counted) => connections = counted,
                Err(error) => reasons.push(format!(
                    "store {} unusable: {}",
                    self.store.url(),
                    crate::util::cause_chain(&error)
                )),
            }
        }
        crate::telemetry::metrics::readiness(
            connected,
            context_server == "reachable",
            &[
                (ConnectionState::Healthy.as_str(), connections.healthy),
                (ConnectionState::Expired.as_str(), connections.expired),
                (ConnectionState::Revoked.as_str(), connections.revoked),
            ],
        );
        Report {
            ready: reasons.is_empty(),
            reasons,
            connected,
            context_server,
            connections,
            attention,
        }
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

//! Readiness: settings complete, an Asana token that is valid or refreshable, and a
//! reachable context source (checked at most every 30 s).

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::app::AppState;

/// How long a reachability check is reused.
const CHECK_TTL: Duration = Duration::from_secs(30);

/// The cached reachability of the context source.
#[derive(Debug, Default)]
pub struct Readiness {
    reachability: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    /// Why the service cannot do its job now; empty when ready.
    pub async fn reasons(&self, state: &AppState) -> Vec<String> {
        let mut reasons = Vec::new();
        if !state.missing_oauth.is_empty() {
            reasons.push(format!(
                "OAuth settings missing: {}",
                state.missing_oauth.join(", ")
            ));
        }
        if let Err(reason) = state.tokens.status() {
            reasons.push(reason);
        }
        match &state.context {
            None => reasons.push("MCP_SERVER_URL or MCP_SERVER_COMMAND is not set".to_owned()),
            Some(source) => {
                let mut cached = self.reachability.lock().await;
                let fresh = cached.as_ref().filter(|(at, _)| at.elapsed() < CHECK_TTL);
                let result = match fresh {
                    Some((_, result)) => result.clone(),
                    None => {
                        let result = source
                            .probe()
                            .await
                            .map_err(|e| format!("context server unreachable: {e}"));
                        *cached = Some((Instant::now(), result.clone()));
                        result
                    }
                };
                if let Err(reason) = result {
                    reasons.push(reason);
                }
            }
        }
        reasons
    }
}

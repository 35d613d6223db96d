//! What other replicas change, followed through the store: Asana's 429 pauses, per token (a
//! pause this process is asked for is written at once, and the store is read every second, so
//! every replica holds that connection's calls within about a second of any one seeing a 429), whether a webhook
//! has completed its handshake (so every replica remembers its own comments), and which
//! connections are connected and which is the default (so a disconnect, or an operator's
//! `connections default`, holds on every replica within about a second).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::asana::{AsanaClient, Connections};
use crate::store::{Store, millis, now_ms};
use crate::webhooks::HookStore;

/// How often the store is read.
const POLL: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true.
pub fn spawn(
    store: Store,
    asana: Arc<AsanaClient>,
    hooks: Arc<HookStore>,
    connections: Arc<Connections>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut asked = asana.pauses_asked();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(POLL);
        loop {
            enum Next {
                Asked,
                Poll,
                Stop,
            }
            let next = tokio::select! {
                changed = asked.changed() => if changed.is_ok() { Next::Asked } else { Next::Stop },
                _ = every.tick() => Next::Poll,
                _ = stop.wait_for(|stopping| *stopping) => Next::Stop,
            };
            let result = match next {
                Next::Stop => break,
                Next::Asked => {
                    let asked = asked.borrow_and_update().clone();
                    match asked.and_then(|(key, u)| Some((key, u.duration_since(UNIX_EPOCH).ok()?)))
                    {
                        Some((key, until)) => store.pause(&key, millis(until)).await,
                        None => Ok(()),
                    }
                }
                Next::Poll => match store.pauses(now_ms()).await {
                    Ok(pauses) => {
                        for (key, until) in pauses {
                            let until = UNIX_EPOCH
                                + Duration::from_millis(u64::try_from(until).unwrap_or(0));
                            asana.pause_until(&key, until.max(SystemTime::now()));
                        }
                        match hooks.refresh().await {
                            Ok(()) => connections.refresh().await,
                            Err(error) => Err(error),
                        }
                    }
                    Err(error) => Err(error),
                },
            };
            if let Err(error) = result {
                tracing::warn!(error = %crate::util::cause_chain(&error), "cannot follow the store's shared state");
            }
        }
    })
}

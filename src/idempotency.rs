//! `Idempotency-Key` on attach (and webhook event ids): the same key within 24 h gets the
//! first outcome again without calling the context server or Asana, on any replica. A key is
//! claimed in the store before anything is sent; a second request with it waits for the
//! outcome, or gets `409 idempotency_in_flight`; a claim whose owner died is taken over only
//! after its lease and the Asana timeout have passed, and the run that takes it over resumes
//! (looks in Asana for what the first one wrote before writing anything).

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::InvalidInput;
use crate::store::{KeyRow, KeyState, Store, StoreError, millis, now_ms};

/// How long an outcome is replayed.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// A client's `Idempotency-Key`: 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Accepts 1–255 characters from `!` to `~`.
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidInput(
                "Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned(),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A response worth replaying: status and JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: serde_json::Value,
}

/// What to keep of an outcome under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// A retry cannot change it: replayed for 24 h.
    Final,
    /// It failed after something may have been written: a retry runs again, but resumes
    /// (looks in Asana for what the first try wrote before writing anything).
    Unknown,
    /// It failed before anything was written: the key is freed.
    Nothing,
}

impl Keep {
    /// The usual rule for a response with `status` when `wrote` says whether a write was
    /// sent: 4xx other than 429 are final; otherwise unknown once a write was sent.
    pub fn for_status(status: u16, wrote: bool) -> Self {
        match (status < 500 && status != 429, wrote) {
            (true, _) => Self::Final,
            (false, true) => Self::Unknown,
            (false, false) => Self::Nothing,
        }
    }
}

/// The result of running a keyed request.
pub enum Once<T> {
    /// This request ran; here is its result.
    Ran(T),
    /// An earlier request with the key ran; here is its outcome.
    Replayed(Outcome),
}

/// Why a keyed request was not run.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The key was used before with another body.
    #[error("this Idempotency-Key was used with a different request body")]
    KeyReused,
    /// Another request with the key is running and did not finish while this one waited.
    #[error("a request with this Idempotency-Key is still running; retry after {} s", .retry_after.as_secs())]
    InFlight {
        /// When to try again.
        retry_after: Duration,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// SHA-256 of the request's canonical form, to tell a replay from a reuse.
pub fn fingerprint(canonical: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(canonical).unwrap_or_default();
    crate::util::digest::sha256_hex(bytes)
}

/// Keyed requests run once across every replica sharing the store.
#[derive(Debug, Clone)]
pub struct Idempotency {
    store: Store,
    /// This process, as the owner of the keys it claims.
    owner: String,
    /// How long a claim holds without renewal; the owner renews it every third of that.
    lease: Duration,
    /// Added to an expired lease before a take-over: a write the dead owner sent may still
    /// be arriving at Asana (`ASANA_TIMEOUT_SECS`).
    grace: Duration,
    /// How long a second request waits for the first one's outcome before `409`.
    wait: Duration,
}

impl Idempotency {
    /// Keys in `store`, claimed as `owner`.
    pub fn new(
        store: Store,
        owner: String,
        lease: Duration,
        grace: Duration,
        wait: Duration,
    ) -> Self {
        Self {
            store,
            owner,
            lease,
            grace,
            wait,
        }
    }

    /// Runs `op` unless `key` (in `scope`) already has an outcome (replayed) or is running
    /// (waited for, then replayed, or `InFlight`). `outcome` says what of the result to keep.
    /// `op` is told whether it resumes a try whose outcome was unknown.
    pub async fn run_once<T, F, Fut>(
        &self,
        scope: &str,
        key: &IdempotencyKey,
        fingerprint: &str,
        op: F,
        outcome: impl Fn(&T) -> (Outcome, Keep),
    ) -> Result<Once<T>, IdempotencyError>
    where
        F: FnOnce(bool) -> Fut,
        Fut: Future<Output = T>,
    {
        let key = key.as_str();
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            if self
                .store
                .claim_key(scope, key, fingerprint, &self.owner, self.lease)
                .await?
            {
                return Ok(Once::Ran(self.run(scope, key, false, op, outcome).await));
            }
            let Some(row) = self.store.key(scope, key).await? else {
                continue;
            };
            let now = now_ms();
            if row.created_at < now - millis(KEY_TTL) {
                self.store.expire_key(scope, key, &row).await?;
                continue;
            }
            if row.fingerprint != fingerprint {
                return Err(IdempotencyError::KeyReused);
            }
            match row.state {
                KeyState::Done => return Ok(Once::Replayed(replay(&row))),
                KeyState::Unknown => {
                    if self.take_over(scope, key, &row).await? {
                        return Ok(Once::Ran(self.run(scope, key, true, op, outcome).await));
                    }
                }
                KeyState::InFlight => {
                    let free_at = row.lease_until + millis(self.grace);
                    if free_at < now {
                        // Its owner died: the run that takes over looks in Asana first.
                        if self.take_over(scope, key, &row).await? {
                            return Ok(Once::Ran(self.run(scope, key, true, op, outcome).await));
                        }
                    } else if started.elapsed() >= self.wait {
                        let retry_after =
                            Duration::from_millis(u64::try_from(free_at - now).unwrap_or(0))
                                .max(Duration::from_secs(1));
                        return Err(IdempotencyError::InFlight { retry_after });
                    } else {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(250));
                    }
                }
            }
        }
    }

    async fn take_over(&self, scope: &str, key: &str, row: &KeyRow) -> Result<bool, StoreError> {
        self.store
            .take_over_key(scope, key, row, &self.owner, self.lease)
            .await
    }

    /// Runs `op` under the claim, renewing it, and records what `outcome` says to keep. A
    /// failure to record is logged: the claim then expires and the next try resumes.
    async fn run<T, F, Fut>(
        &self,
        scope: &str,
        key: &str,
        resume: bool,
        op: F,
        outcome: impl Fn(&T) -> (Outcome, Keep),
    ) -> T
    where
        F: FnOnce(bool) -> Fut,
        Fut: Future<Output = T>,
    {
        let running = op(resume);
        tokio::pin!(running);
        let mut renew = tokio::time::interval(self.lease / 3);
        renew.reset();
        let result = loop {
            tokio::select! {
                result = &mut running => break result,
                _ = renew.tick() => {
                    if let Err(error) = self.store.renew_key(scope, key, &self.owner, self.lease).await {
                        tracing::warn!(error = %crate::util::cause_chain(&error), "cannot renew an idempotency claim");
                    }
                }
            }
        };
        let (kept, keep) = outcome(&result);
        let recorded = match keep {
            Keep::Nothing => self.store.release_key(scope, key, &self.owner).await,
            Keep::Final | Keep::Unknown => {
                let state = if keep == Keep::Final {
                    KeyState::Done
                } else {
                    KeyState::Unknown
                };
                let body = serde_json::to_string(&kept.body).unwrap_or_default();
                self.store
                    .finish_key(scope, key, &self.owner, state, kept.status, &body)
                    .await
            }
        };
        if let Err(error) = recorded {
            tracing::error!(error = %crate::util::cause_chain(&error), "cannot record an idempotency outcome; a retry will resume");
        }
        result
    }
}

fn replay(row: &KeyRow) -> Outcome {
    let (status, body) = row.outcome.clone().unwrap_or((500, String::new()));
    Outcome {
        status,
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    }
}

/// A line of the key journal an earlier version kept beside the token file.
#[derive(Deserialize)]
struct JournalLine {
    key: String,
    fingerprint: String,
    /// Seconds since the Unix epoch.
    at: i64,
    outcome: Outcome,
    #[serde(default)]
    unknown: bool,
}

/// Moves a key journal of an earlier version into the store, skipping expired and torn lines,
/// then removes it: `Idempotency-Key`s go to `scope`, handled webhook events
/// (`webhook_seen.jsonl`) to the webhook jobs, the linker's own stories to the seen events.
/// What the store already has is left as it is.
pub async fn import_journal(
    store: &Store,
    path: &std::path::Path,
    scope: &str,
) -> Result<(), StoreError> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "cannot read a key journal of an earlier version; not imported");
            return Ok(());
        }
    };
    let cutoff = now_ms() - millis(KEY_TTL);
    let mut imported = 0;
    for line in text.lines() {
        let Ok(line) = serde_json::from_str::<JournalLine>(line) else {
            continue;
        };
        let at = line.at.saturating_mul(1000);
        if at < cutoff {
            continue;
        }
        if line.key.starts_with("story:") {
            store.mark_seen(&line.key).await?;
        } else if let Some(event_id) = line.key.strip_prefix("event:") {
            store.import_done_job(event_id, at).await?;
        } else {
            let state = if line.unknown {
                KeyState::Unknown
            } else {
                KeyState::Done
            };
            let row = KeyRow {
                fingerprint: line.fingerprint,
                state,
                lease_until: 0,
                outcome: Some((
                    line.outcome.status,
                    serde_json::to_string(&line.outcome.body).unwrap_or_default(),
                )),
                created_at: at,
                updated_at: at,
            };
            store.import_key(scope, &line.key, &row).await?;
        }
        imported += 1;
    }
    tracing::info!(path = %path.display(), imported, "imported a key journal of an earlier version into the store");
    if let Err(error) = tokio::fs::remove_file(path).await {
        tracing::warn!(path = %path.display(), %error, "cannot remove the imported key journal");
    }
    Ok(())
}

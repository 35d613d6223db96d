//! `Idempotency-Key` on attach: the same key within 24 h gets the first outcome again without
//! calling the context server or Asana; concurrent requests with one key make one post.
//! Outcomes are kept in memory and appended to a JSON-lines file next to the token file, so a
//! restart does not forget them; the server compacts the file (expired keys pruned) at start.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::domain::InvalidInput;

/// How long an outcome is replayed.
const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most outcomes kept; the oldest are forgotten first.
const MAX_KEYS: usize = 10_000;

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

/// One line of the file.
#[derive(Serialize, Deserialize)]
struct Record {
    key: String,
    fingerprint: String,
    /// Seconds since the Unix epoch.
    at: u64,
    outcome: Outcome,
    /// The outcome is unknown: a retry resumes instead of replaying.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    unknown: bool,
}

enum Slot {
    InFlight {
        fingerprint: String,
        done: watch::Receiver<Option<Outcome>>,
        /// The unknown outcome this run resumes, put back if the run is dropped unfinished.
        resumes: Option<Record>,
    },
    Done(Record),
}

/// Where a request with a key stands.
pub enum Begin {
    /// First use: run the request, then `finish` the ticket.
    Fresh(Ticket),
    /// Seen before with the same body: answer this again.
    Replay(Outcome),
    /// Seen before with another body.
    Conflict,
    /// The same key is being processed now: wait for its outcome.
    Wait(watch::Receiver<Option<Outcome>>),
}

/// Keys in memory: the slots, and the kept outcomes oldest first, so the oldest is evicted
/// in constant time once `MAX_KEYS` are kept.
#[derive(Debug, Default)]
struct Keys {
    map: HashMap<String, Slot>,
    order: VecDeque<(u64, String)>,
}

impl Keys {
    /// Keeps a final record, evicting expired and excess ones, oldest first.
    fn keep(&mut self, record: Record) {
        self.order.push_back((record.at, record.key.clone()));
        self.map.insert(record.key.clone(), Slot::Done(record));
        let cutoff = now_secs().saturating_sub(KEY_TTL.as_secs());
        while let Some((at, _)) = self.order.front() {
            if *at >= cutoff && self.order.len() <= MAX_KEYS {
                break;
            }
            if let Some((at, key)) = self.order.pop_front()
                && matches!(self.map.get(&key), Some(Slot::Done(r)) if r.at == at)
            {
                self.map.remove(&key);
            }
        }
    }
}

type Slots = Arc<Mutex<Keys>>;

/// The right to run a keyed request. Dropped unfinished (the client went away), it frees
/// the key.
pub struct Ticket {
    slots: Slots,
    key: String,
    fingerprint: String,
    done: Option<watch::Sender<Option<Outcome>>>,
    /// An earlier try with this key had an unknown outcome.
    pub resume: bool,
}

/// The result of running a keyed request.
pub enum Once<T> {
    /// This request ran; here is its result.
    Ran(T),
    /// An earlier request with the key ran; here is its outcome.
    Replayed(Outcome),
}

/// The key was used before with another body.
#[derive(Debug, thiserror::Error)]
#[error("this Idempotency-Key was used with a different request body")]
pub struct KeyReused;

/// The store of keys and outcomes.
#[derive(Debug)]
pub struct IdempotencyStore {
    path: PathBuf,
    slots: Slots,
    /// Lines for the background appender used by `remember`, started on first use.
    appender: OnceLock<std::sync::mpsc::Sender<Vec<u8>>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InFlight { .. } => "InFlight",
            Self::Done(_) => "Done",
        })
    }
}

/// A failure to read or compact the key file at startup.
#[derive(Debug, thiserror::Error)]
#[error("idempotency key file {path}: {source}")]
pub struct IdempotencyFileError {
    path: PathBuf,
    source: io::Error,
}

/// SHA-256 of the request's canonical form, to tell a replay from a reuse.
pub fn fingerprint(canonical: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(canonical).unwrap_or_default();
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn lock(slots: &Slots) -> MutexGuard<'_, Keys> {
    // Every critical section leaves the map consistent, so a poisoned lock is still usable.
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

impl IdempotencyStore {
    /// Loads `path` (JSON lines), keeping the records that are neither expired nor in excess.
    /// Reads only: see [`IdempotencyStore::compact`].
    pub fn open(path: PathBuf) -> Result<Self, IdempotencyFileError> {
        let io_error = |source| IdempotencyFileError {
            path: path.clone(),
            source,
        };
        let mut records: HashMap<String, Record> = HashMap::new();
        match fs::File::open(&path) {
            Ok(file) => {
                for line in io::BufReader::new(file).lines() {
                    // A line torn by a crash is skipped; every other line stands alone.
                    if let Ok(record) = serde_json::from_str::<Record>(&line.map_err(io_error)?) {
                        records.insert(record.key.clone(), record);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e)),
        }
        let cutoff = now_secs().saturating_sub(KEY_TTL.as_secs());
        let mut kept: Vec<Record> = records.into_values().filter(|r| r.at >= cutoff).collect();
        kept.sort_by_key(|r| r.at);
        let mut slots = Keys::default();
        for record in kept {
            slots.keep(record);
        }
        Ok(Self {
            path,
            slots: Arc::new(Mutex::new(slots)),
            appender: OnceLock::new(),
        })
    }

    /// Rewrites the file with only the records kept in memory (expired and excess ones
    /// dropped). Only the server does this, at start: a command run beside a running server
    /// must never replace the file that server appends to.
    pub fn compact(&self) -> Result<(), IdempotencyFileError> {
        let compacted = {
            let keys = lock(&self.slots);
            let mut out = Vec::new();
            for (at, key) in &keys.order {
                if let Some(Slot::Done(record)) = keys.map.get(key)
                    && record.at == *at
                {
                    out.extend(serde_json::to_vec(record).unwrap_or_default());
                    out.push(b'\n');
                }
            }
            out
        };
        crate::util::atomic_file::write(&self.path, &compacted).map_err(|source| {
            IdempotencyFileError {
                path: self.path.clone(),
                source,
            }
        })
    }

    /// Runs `op` unless `key` already has an outcome (replayed) or is running now (waited
    /// for, then replayed). `outcome` says what of the result to keep.
    /// `op` is told whether it resumes a try whose outcome was unknown.
    pub async fn run_once<T, F, Fut>(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        op: F,
        outcome: impl Fn(&T) -> (Outcome, Keep),
    ) -> Result<Once<T>, KeyReused>
    where
        F: FnOnce(bool) -> Fut,
        Fut: Future<Output = T>,
    {
        let mut op = Some(op);
        loop {
            match self.begin(key, fingerprint) {
                Begin::Fresh(ticket) => {
                    let Some(op) = op.take() else {
                        continue;
                    };
                    let result = op(ticket.resume).await;
                    let (outcome, keep) = outcome(&result);
                    self.finish(ticket, outcome, keep).await;
                    return Ok(Once::Ran(result));
                }
                Begin::Replay(outcome) => return Ok(Once::Replayed(outcome)),
                Begin::Conflict => return Err(KeyReused),
                Begin::Wait(mut done) => {
                    // A dropped ticket (its client went away) frees the key: try again.
                    if let Ok(finished) = done.wait_for(Option::is_some).await
                        && let Some(outcome) = finished.clone()
                    {
                        return Ok(Once::Replayed(outcome));
                    }
                }
            }
        }
    }

    /// Whether `key` has a kept outcome (used as a set of seen keys by the webhook worker).
    pub fn contains(&self, key: &str) -> bool {
        let cutoff = now_secs().saturating_sub(KEY_TTL.as_secs());
        matches!(lock(&self.slots).map.get(key), Some(Slot::Done(r)) if r.at >= cutoff)
    }

    /// Keeps `key` as seen for 24 h. The line is written by a background thread and not
    /// fsynced: this marks the linker's own comments, on the path of every attach, where a
    /// file write per request would halve the throughput. A crash may forget the last few,
    /// which only matters if a context's text is itself a `/context` command.
    pub fn remember(&self, key: &str) {
        let record = Record {
            key: key.to_owned(),
            fingerprint: String::new(),
            at: now_secs(),
            outcome: Outcome {
                status: 200,
                body: serde_json::Value::Null,
            },
            unknown: false,
        };
        let line = serde_json::to_vec(&record).unwrap_or_default();
        lock(&self.slots).keep(record);
        let appender = self
            .appender
            .get_or_init(|| spawn_appender(self.path.clone()));
        if appender.send(line).is_err() {
            tracing::warn!(
                key,
                "the seen-keys file writer has stopped; kept in memory only"
            );
        }
    }

    /// Claims `key` for a request whose body has `fingerprint`.
    pub fn begin(&self, key: &IdempotencyKey, fingerprint: &str) -> Begin {
        let mut slots = lock(&self.slots);
        let cutoff = now_secs().saturating_sub(KEY_TTL.as_secs());
        let mut resume = false;
        match slots.map.get(&key.0) {
            Some(Slot::Done(record)) if record.at >= cutoff => {
                if record.fingerprint != fingerprint {
                    return Begin::Conflict;
                }
                if !record.unknown {
                    return Begin::Replay(record.outcome.clone());
                }
                resume = true;
            }
            Some(Slot::InFlight {
                fingerprint: held,
                done,
                ..
            }) => {
                return if held == fingerprint {
                    Begin::Wait(done.clone())
                } else {
                    Begin::Conflict
                };
            }
            _ => {}
        }
        let (sender, receiver) = watch::channel(None);
        let resumes = match slots.map.remove(&key.0) {
            Some(Slot::Done(record)) if resume => Some(record),
            _ => None,
        };
        slots.map.insert(
            key.0.clone(),
            Slot::InFlight {
                fingerprint: fingerprint.to_owned(),
                done: receiver,
                resumes,
            },
        );
        Begin::Fresh(Ticket {
            slots: Arc::clone(&self.slots),
            key: key.0.clone(),
            fingerprint: fingerprint.to_owned(),
            done: Some(sender),
            resume,
        })
    }

    /// Records the outcome of a fresh request and wakes its waiters. A final or unknown
    /// outcome is appended to the file before anyone sees it; `Keep::Nothing` frees the key.
    pub async fn finish(&self, mut ticket: Ticket, outcome: Outcome, keep: Keep) {
        let Some(done) = ticket.done.take() else {
            return;
        };
        if keep != Keep::Nothing {
            let record = Record {
                key: ticket.key.clone(),
                fingerprint: ticket.fingerprint.clone(),
                at: now_secs(),
                outcome: outcome.clone(),
                unknown: keep == Keep::Unknown,
            };
            let line = serde_json::to_vec(&record).unwrap_or_default();
            let path = self.path.clone();
            match tokio::task::spawn_blocking(move || append_line(&path, &line)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "cannot persist an idempotency key"),
                Err(error) => tracing::error!(%error, "cannot persist an idempotency key"),
            }
            lock(&self.slots).keep(record);
        } else {
            lock(&self.slots).map.remove(&ticket.key);
        }
        // Waiters replay the outcome, final or not: they asked at the same moment.
        let _ = done.send(Some(outcome));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.done.is_some() {
            let mut slots = lock(&self.slots);
            if let Some(Slot::InFlight { resumes, .. }) = slots.map.remove(&self.key)
                && let Some(record) = resumes
            {
                slots.map.insert(self.key.clone(), Slot::Done(record));
            }
        }
    }
}

fn append_line(path: &Path, line: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let mut buffer = line.to_vec();
    buffer.push(b'\n');
    file.write_all(&buffer)?;
    file.sync_data()
}

/// A thread appending the lines it is sent to `path`, a batch at a time; it ends when the
/// store is dropped. The file is opened per batch, so a file replaced by another process is
/// followed, not written past.
fn spawn_appender(path: PathBuf) -> std::sync::mpsc::Sender<Vec<u8>> {
    let (sender, receiver) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        while let Ok(first) = receiver.recv() {
            let mut batch = first;
            batch.push(b'\n');
            for line in receiver.try_iter() {
                batch.extend_from_slice(&line);
                batch.push(b'\n');
            }
            let written = fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut file| file.write_all(&batch));
            if let Err(error) = written {
                tracing::error!(%error, path = %path.display(), "cannot write the seen-keys file");
            }
        }
    });
    sender
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(value: &str) -> IdempotencyKey {
        IdempotencyKey::parse(value).expect("valid key")
    }

    fn created() -> Outcome {
        Outcome {
            status: 201,
            body: json!({"story_gid": "1"}),
        }
    }

    #[test]
    fn keys_must_be_short_visible_ascii() {
        for bad in ["", "has space", "tab\t", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(IdempotencyKey::parse("order-42:attempt/1").is_ok());
    }

    #[tokio::test]
    async fn a_final_outcome_is_replayed_after_a_restart_and_a_changed_body_conflicts() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("idempotency.jsonl");
        let store = IdempotencyStore::open(path.clone()).expect("open");
        let Begin::Fresh(ticket) = store.begin(&key("k1"), "body-a") else {
            panic!("first use is fresh");
        };
        store.finish(ticket, created(), Keep::Final).await;

        let reopened = IdempotencyStore::open(path).expect("reopen");

        assert!(matches!(reopened.begin(&key("k1"), "body-a"), Begin::Replay(o) if o == created()));
        assert!(matches!(
            reopened.begin(&key("k1"), "body-b"),
            Begin::Conflict
        ));
    }

    #[tokio::test]
    async fn a_failure_before_any_write_frees_the_key() {
        let dir = tempfile::tempdir().expect("dir");
        let store = IdempotencyStore::open(dir.path().join("k.jsonl")).expect("open");
        let Begin::Fresh(ticket) = store.begin(&key("k"), "b") else {
            panic!("fresh");
        };
        let failed = Outcome {
            status: 502,
            body: json!({}),
        };
        store
            .finish(ticket, failed, Keep::for_status(502, false))
            .await;

        assert!(matches!(store.begin(&key("k"), "b"), Begin::Fresh(t) if !t.resume));
    }

    #[tokio::test]
    async fn an_unknown_outcome_survives_a_restart_and_its_retry_resumes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k.jsonl");
        let store = IdempotencyStore::open(path.clone()).expect("open");
        let Begin::Fresh(ticket) = store.begin(&key("k"), "b") else {
            panic!("fresh");
        };
        let unknown = Outcome {
            status: 504,
            body: json!({}),
        };
        store
            .finish(ticket, unknown, Keep::for_status(504, true))
            .await;

        let reopened = IdempotencyStore::open(path).expect("reopen");

        assert!(matches!(reopened.begin(&key("k"), "b"), Begin::Fresh(t) if t.resume));
        assert!(
            matches!(reopened.begin(&key("k"), "b"), Begin::Fresh(t) if t.resume),
            "a resume dropped unfinished leaves the outcome unknown"
        );
        assert!(matches!(
            reopened.begin(&key("k"), "other"),
            Begin::Conflict
        ));
    }

    #[test]
    fn memory_stays_bounded_and_the_oldest_keys_go_first() {
        let dir = tempfile::tempdir().expect("dir");
        let store = IdempotencyStore::open(dir.path().join("seen.jsonl")).expect("open");

        for i in 0..MAX_KEYS + 5 {
            store.remember(&format!("story:{i}"));
        }

        assert!(lock(&store.slots).map.len() <= MAX_KEYS);
        assert!(!store.contains("story:0"));
        assert!(store.contains(&format!("story:{}", MAX_KEYS + 4)));
    }

    #[test]
    fn a_dropped_ticket_frees_the_key() {
        let dir = tempfile::tempdir().expect("dir");
        let store = IdempotencyStore::open(dir.path().join("k.jsonl")).expect("open");
        let first = store.begin(&key("k"), "b");
        assert!(matches!(store.begin(&key("k"), "b"), Begin::Wait(_)));
        drop(first);

        assert!(matches!(store.begin(&key("k"), "b"), Begin::Fresh(_)));
    }

    #[test]
    fn expired_and_torn_lines_are_dropped_and_only_compact_rewrites_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k.jsonl");
        let old = Record {
            key: "old".into(),
            fingerprint: "f".into(),
            at: now_secs() - KEY_TTL.as_secs() - 10,
            outcome: created(),
            unknown: false,
        };
        let fresh = Record {
            key: "fresh".into(),
            at: now_secs(),
            ..old.clone_record()
        };
        let mut contents = serde_json::to_string(&old).expect("json") + "\n";
        contents += &(serde_json::to_string(&fresh).expect("json") + "\n{\"key\":\"torn");
        fs::write(&path, &contents).expect("write");

        let store = IdempotencyStore::open(path.clone()).expect("open");
        let after_open = fs::read_to_string(&path).expect("read");
        store.compact().expect("compact");

        assert_eq!(after_open, contents);
        assert_eq!(fs::read_to_string(&path).expect("read").lines().count(), 1);
        assert!(matches!(store.begin(&key("old"), "f"), Begin::Fresh(_)));
        assert!(matches!(store.begin(&key("fresh"), "f"), Begin::Replay(_)));
    }

    impl Record {
        fn clone_record(&self) -> Self {
            Self {
                key: self.key.clone(),
                fingerprint: self.fingerprint.clone(),
                at: self.at,
                outcome: self.outcome.clone(),
                unknown: self.unknown,
            }
        }
    }
}

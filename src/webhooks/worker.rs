//! The event queue and its workers: the receiver only enqueues, so it answers Asana at once;
//! workers turn events into attaches. On shutdown the queue is drained before workers stop.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;

use super::events::Event;
use super::rules::context_command;
use crate::app::AppState;
use crate::asana::{AsanaError, Marker};
use crate::domain::{AttachRequest, ContextName, Target, TaskGid};
use crate::idempotency::{IdempotencyKey, Keep, Once, Outcome};
use crate::render::Format;

/// Events waiting at most; beyond it the receiver answers 503 and Asana delivers again later.
const QUEUE_CAPACITY: usize = 1024;
/// Workers handling events concurrently.
const WORKERS: usize = 2;

/// One event to handle.
#[derive(Debug)]
pub struct Job {
    /// The event.
    pub event: Event,
}

/// The sending side of the queue, held by the receiver route.
#[derive(Debug)]
pub struct Queue {
    sender: mpsc::Sender<Job>,
    receiver: std::sync::Mutex<Option<mpsc::Receiver<Job>>>,
}

/// The queue is full.
#[derive(Debug, thiserror::Error)]
#[error("the webhook event queue is full")]
pub struct QueueFull;

impl Queue {
    /// An empty queue; its receiving side goes to `spawn_workers`.
    pub fn new() -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        Self {
            sender,
            receiver: std::sync::Mutex::new(Some(receiver)),
        }
    }

    /// Enqueues without waiting.
    pub fn push(&self, job: Job) -> Result<(), QueueFull> {
        self.sender.try_send(job).map_err(|_| QueueFull)
    }
}

impl Default for Queue {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts the workers; once `stop` turns true they handle what is queued, then end.
pub fn spawn_workers(state: Arc<AppState>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let receiver = state
        .webhook_queue
        .receiver
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let Some(receiver) = receiver else {
        return Vec::new();
    };
    let receiver = Arc::new(Mutex::new(receiver));
    (0..WORKERS)
        .map(|_| {
            let state = Arc::clone(&state);
            let receiver = Arc::clone(&receiver);
            let mut stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    let job = {
                        let mut receiver = receiver.lock().await;
                        tokio::select! {
                            job = receiver.recv() => job,
                            _ = stop.wait_for(|stopping| *stopping) => receiver.try_recv().ok(),
                        }
                    };
                    match job {
                        Some(job) => handle(&state, job.event).await,
                        None => break,
                    }
                }
            })
        })
        .collect()
}

/// Where webhook event ids are claimed, apart from clients' `Idempotency-Key`s.
pub const WEBHOOK_SCOPE: &str = "webhook-events";

/// Handles an event once: its identity is claimed in the store for 24 h, so a redelivery,
/// even after a restart or to another replica, does nothing.
async fn handle(state: &AppState, event: Event) {
    let identity = event.identity();
    let Ok(key) = IdempotencyKey::parse(&format!("event:{identity}")) else {
        tracing::warn!(%identity, "event identity unusable as a key; handling without dedupe");
        act(state, &event).await;
        return;
    };
    let once = state
        .idempotency
        .run_once(
            WEBHOOK_SCOPE,
            &key,
            "",
            |_| act(state, &event),
            |_| {
                let handled = Outcome {
                    status: 200,
                    body: serde_json::Value::Null,
                };
                (handled, Keep::Final)
            },
        )
        .await;
    match once {
        Ok(Once::Replayed(_)) => tracing::info!(%identity, "event already handled; skipped"),
        Ok(Once::Ran(())) => {}
        Err(error) => {
            tracing::warn!(%identity, error = %crate::util::cause_chain(&error), "event not handled")
        }
    }
}

async fn act(state: &AppState, event: &Event) {
    let identity = event.identity();
    if let Some(story) = event.new_story()
        && let Some((task, name, format)) = comment_command(state, event, story).await
    {
        attach(state, &identity, &task, &name, format).await;
    }
    if let Some((task, project)) = event.task_added_to_project() {
        for (name, format) in state.webhook_rules.for_project(project) {
            attach(state, &identity, task, &name, format).await;
        }
    }
    if let Some((task, tag)) = event.tag_added() {
        for (name, format) in state.webhook_rules.for_tag(tag) {
            attach(state, &identity, task, &name, format).await;
        }
    }
}

/// The `/context` command of a new comment, unless the linker wrote that comment.
async fn comment_command(
    state: &AppState,
    event: &Event,
    story_gid: &str,
) -> Option<(String, String, Option<Format>)> {
    if state
        .store
        .is_seen(&format!("story:{story_gid}"))
        .await
        .unwrap_or(false)
    {
        tracing::debug!(story_gid, "the linker's own comment; no rule applies");
        return None;
    }
    let token = match state.attacher.tokens.access_token().await {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(story_gid, %error, "cannot read the story: no Asana token");
            return None;
        }
    };
    let story = state
        .attacher
        .retry
        .run(
            || state.attacher.asana.story(&token, story_gid),
            AsanaError::retry,
        )
        .await;
    let story = match story {
        Ok(story) => story,
        Err(error) => {
            tracing::error!(story_gid, error = %crate::util::cause_chain(&error), "cannot read the story");
            return None;
        }
    };
    if story.resource_subtype.as_deref() != Some("comment_added") {
        return None;
    }
    let (name, format) = context_command(story.text.as_deref().unwrap_or_default())?;
    let task = story
        .target
        .map(|t| t.gid)
        .or_else(|| event.parent.as_ref().map(|p| p.gid.clone()))?;
    Some((task, name, format))
}

async fn attach(state: &AppState, identity: &str, task: &str, name: &str, format: Option<Format>) {
    let request = match (TaskGid::parse(task), ContextName::parse(name)) {
        (Ok(task_gid), Ok(context_name)) => AttachRequest {
            task_gid,
            context_name,
            arguments: Default::default(),
            format,
            target: Target::Comment { pin: false },
            footer: false,
        },
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(identity, %error, "rule not applied");
            return;
        }
    };
    // One marker per event and context: a redelivered event is recognised in Asana too.
    let marker = Marker::for_key(&format!("{identity}/{name}"));
    match state.attacher.attach(&request, &marker, false).await {
        Ok(attached) => {
            tracing::info!(identity, task, context = name, ?attached.written, "attached by webhook")
        }
        Err(error) => {
            tracing::error!(identity, task, context = name, error = %crate::util::cause_chain(&error), "webhook attach failed")
        }
    }
}

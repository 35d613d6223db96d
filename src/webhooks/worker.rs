//! Webhook events as jobs in the store: the receiver writes them before Asana gets its 200,
//! and workers on any replica claim them under a lease they renew while they run. A job whose
//! worker died (kill -9, replica gone) is taken over once its lease and the Asana timeout
//! have passed, and the attach that takes it over looks in Asana for its comment first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::events::Event;
use super::hooks::HookId;
use super::rules::context_command;
use crate::app::AppState;
use crate::asana::{AsanaError, Marker, TokenManager};
use crate::domain::{AttachRequest, ContextName, Target, TaskGid};
use crate::render::Format;
use crate::store::{JobRow, Store, StoreError};

/// Events waiting at most; beyond it the receiver answers 503 and Asana delivers again later.
const MAX_QUEUED: i64 = 10_000;
/// Workers handling events concurrently, per replica.
const WORKERS: usize = 2;
/// How often an idle worker looks for jobs another replica accepted or a dead one left.
const POLL: Duration = Duration::from_secs(1);
/// Claims of one job at most: a job that kills every worker taking it is given up.
const MAX_ATTEMPTS: i64 = 5;

/// The webhook jobs in the store, as this process claims and runs them.
#[derive(Debug)]
pub struct Jobs {
    store: Store,
    /// This process, as the owner of the jobs it claims.
    owner: String,
    /// How long a claim holds without renewal; renewed every third of that.
    lease: Duration,
    /// Added to an expired lease before a take-over (`ASANA_TIMEOUT_SECS`).
    grace: Duration,
    /// Wakes this process's idle workers when its receiver queued something.
    wake: Notify,
}

/// Why a delivery's events were not queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// Too many events are waiting.
    #[error("the webhook event queue is full")]
    Full,
    /// The store cannot take them.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Jobs {
    /// Jobs in `store`, claimed as `owner` for `lease`, taken over `grace` after it ran out.
    pub fn new(store: Store, owner: String, lease: Duration, grace: Duration) -> Self {
        Self {
            store,
            owner,
            lease,
            grace,
            wake: Notify::new(),
        }
    }

    /// Writes the events of one delivery through `hook` to the store in one transaction
    /// (events already there are left alone) and wakes the workers. Returns how many were new.
    pub async fn enqueue(&self, hook: &HookId, events: &[Event]) -> Result<usize, EnqueueError> {
        if events.is_empty() {
            return Ok(0);
        }
        if self.store.queued_jobs().await? >= MAX_QUEUED {
            return Err(EnqueueError::Full);
        }
        let rows: Vec<(String, String)> = events
            .iter()
            .map(|event| {
                let json = serde_json::to_string(event).unwrap_or_default();
                (event.identity(), json)
            })
            .collect();
        let new = self.store.enqueue_jobs(hook.as_str(), &rows).await?;
        if new > 0 {
            self.wake.notify_waiters();
        }
        Ok(new)
    }

    async fn claim(&self) -> Result<Option<JobRow>, StoreError> {
        self.store
            .claim_job(&self.owner, self.lease, self.grace)
            .await
    }

    /// Runs `job` under its claim, renewing it, then marks it handled. A failure to mark it
    /// is logged: the claim runs out and the take-over looks in Asana before writing.
    async fn run(&self, state: &AppState, job: JobRow) {
        let id = job.event_id.as_str();
        let event = match serde_json::from_str::<Event>(&job.event) {
            Ok(event) if job.attempts <= MAX_ATTEMPTS => Some(event),
            Ok(_) => {
                tracing::error!(
                    event = id,
                    attempts = job.attempts,
                    "webhook event given up: every worker that took it died"
                );
                None
            }
            Err(error) => {
                tracing::error!(event = id, %error, "webhook event unreadable; dropped");
                None
            }
        };
        if let Some(event) = event {
            let running = act(state, &job.hook_id, &event, job.attempts > 1);
            tokio::pin!(running);
            let mut renew = tokio::time::interval(self.lease / 3);
            renew.reset();
            loop {
                tokio::select! {
                    () = &mut running => break,
                    _ = renew.tick() => {
                        if let Err(error) = self.store.renew_job(id, &self.owner, self.lease).await {
                            tracing::warn!(event = id, error = %crate::util::cause_chain(&error), "cannot renew a webhook job");
                        }
                    }
                }
            }
        }
        if let Err(error) = self.store.finish_job(id, &self.owner).await {
            tracing::error!(event = id, error = %crate::util::cause_chain(&error), "cannot mark a webhook job handled; it will be taken over");
        }
    }
}

/// Starts the workers; once `stop` turns true each finishes the job it runs and ends. Jobs
/// still queued stay in the store for the next start or another replica.
pub fn spawn_workers(state: Arc<AppState>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    (0..WORKERS)
        .map(|_| {
            let state = Arc::clone(&state);
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let jobs = &state.webhook_jobs;
                loop {
                    // Registered before looking, so an event queued meanwhile still wakes us.
                    let woken = jobs.wake.notified();
                    tokio::pin!(woken);
                    woken.as_mut().enable();
                    if *stop.borrow() {
                        break;
                    }
                    match jobs.claim().await {
                        Ok(Some(job)) => {
                            jobs.run(&state, job).await;
                            continue;
                        }
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(error = %crate::util::cause_chain(&error), "cannot claim webhook jobs")
                        }
                    }
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep(POLL) => {}
                        _ = stop.wait_for(|stopping| *stopping) => break,
                    }
                }
            })
        })
        .collect()
}

/// Everything `event` (delivered through `hook_id`) asks for; `resume` when an earlier worker
/// may have written some of it. A `/context` comment acts as its author; rules act as the
/// connection that registered the hook (the default one for a hook registered before that
/// was recorded).
async fn act(state: &AppState, hook_id: &str, event: &Event, resume: bool) {
    let identity = event.identity();
    if let Some(story) = event.new_story()
        && let Some(command) = comment_command(state, event, story).await
    {
        match state.attacher.connections.get(&command.author).await {
            Ok(author) => {
                let Command {
                    task, name, format, ..
                } = command;
                attach(state, &author, &identity, &task, &name, format, resume).await;
            }
            Err(_) => tracing::warn!(
                identity,
                author = %command.author,
                "a /context comment by someone with no connection to this linker; skipped (they connect at /asana/oauth/authorize)"
            ),
        }
    }
    let mut rules = Vec::new();
    if let Some((task, project)) = event.task_added_to_project() {
        rules.extend(
            state
                .webhook_rules
                .for_project(project)
                .into_iter()
                .map(|r| (task, r)),
        );
    }
    if let Some((task, tag)) = event.tag_added() {
        rules.extend(
            state
                .webhook_rules
                .for_tag(tag)
                .into_iter()
                .map(|r| (task, r)),
        );
    }
    if rules.is_empty() {
        return;
    }
    let owner = match state.store.hook_owner(hook_id).await {
        Ok(owner) => owner,
        Err(error) => {
            tracing::error!(identity, error = %crate::util::cause_chain(&error), "webhook rules skipped: the store did not answer");
            return;
        }
    };
    let acting = match owner {
        Some(owner) => state.attacher.connections.get(&owner).await,
        None => state.attacher.connections.default().await,
    };
    let acting = match acting {
        Ok(acting) => acting,
        Err(error) => {
            tracing::error!(identity, %error, "webhook rules skipped: the hook's connection is gone");
            return;
        }
    };
    for (task, (name, format)) in rules {
        attach(state, &acting, &identity, task, &name, format, resume).await;
    }
}

/// A `/context` command found in a comment.
struct Command {
    task: String,
    name: String,
    format: Option<Format>,
    /// The comment's author (an Asana user gid).
    author: String,
}

/// The `/context` command of a new comment, unless the linker wrote that comment.
async fn comment_command(state: &AppState, event: &Event, story_gid: &str) -> Option<Command> {
    if state
        .store
        .is_seen(&format!("story:{story_gid}"))
        .await
        .unwrap_or(false)
    {
        tracing::debug!(story_gid, "the linker's own comment; no rule applies");
        return None;
    }
    let acting = match state.attacher.connections.default().await {
        Ok(acting) => acting,
        Err(error) => {
            tracing::error!(story_gid, %error, "cannot read the story: no Asana connection");
            return None;
        }
    };
    let token = match acting.access_token().await {
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
    // The linker's own comments end with their marker line, which no command accepts: one
    // announced before the linker recorded it is read, and goes no further.
    let (name, format) = context_command(story.text.as_deref().unwrap_or_default())?;
    let task = story
        .target
        .map(|t| t.gid)
        .or_else(|| event.parent.as_ref().map(|p| p.gid.clone()))?;
    let Some(author) = story.created_by.map(|a| a.gid) else {
        tracing::warn!(
            story_gid,
            "a /context comment without a known author; skipped"
        );
        return None;
    };
    Some(Command {
        task,
        name,
        format,
        author,
    })
}

async fn attach(
    state: &AppState,
    acting: &TokenManager,
    identity: &str,
    task: &str,
    name: &str,
    format: Option<Format>,
    resume: bool,
) {
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
    match state
        .attacher
        .attach(acting, &request, &marker, resume)
        .await
    {
        Ok(attached) => {
            tracing::info!(identity, task, context = name, ?attached.written, "attached by webhook")
        }
        Err(error) => {
            tracing::error!(identity, task, context = name, error = %crate::util::cause_chain(&error), "webhook attach failed")
        }
    }
}

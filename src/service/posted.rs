//! Recording the comments the linker posts, off the attach path: each attach hands its
//! stories to a background task that writes them to the store a batch (one transaction) at a
//! time, and writes what is left when the service stops.

use tokio::sync::mpsc;

use crate::store::{PostedStory, Store};

/// Most stories written at once.
const BATCH: usize = 256;
/// How long the writer gathers stories after the first one arrives, unless a full batch is
/// already waiting: a few writes a second under light load instead of one per attach.
const GATHER: std::time::Duration = std::time::Duration::from_millis(50);

/// Where attaches hand over the stories they posted.
#[derive(Debug, Clone)]
pub struct PostedLog {
    sender: mpsc::UnboundedSender<PostedStory>,
}

impl PostedLog {
    /// A log, and the receiving end for [`spawn`].
    pub fn new() -> (Self, mpsc::UnboundedReceiver<PostedStory>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self { sender }, receiver)
    }

    /// Hands `story` over; never waits.
    pub fn record(&self, story: PostedStory) {
        if self.sender.send(story).is_err() {
            tracing::warn!("the posted-stories writer has stopped; a story was not recorded");
        }
    }
}

/// Writes what `receiver` gets until every sender is gone or `stop` turns true, then what
/// is still queued.
pub fn spawn(
    store: Store,
    mut receiver: mpsc::UnboundedReceiver<PostedStory>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let received = tokio::select! {
                received = receiver.recv_many(&mut batch, BATCH) => Some(received),
                _ = stop.wait_for(|stopping| *stopping) => None,
            };
            match received {
                Some(0) => break,
                Some(_) => {
                    // A full batch means a backlog: written at once, or the queue would grow
                    // for as long as attaches outpace one batch per gathering period.
                    if batch.len() < BATCH {
                        tokio::time::sleep(GATHER).await;
                        while batch.len() < BATCH
                            && let Ok(story) = receiver.try_recv()
                        {
                            batch.push(story);
                        }
                    }
                    write(&store, &mut batch).await;
                }
                None => {
                    flush(&store, &mut receiver).await;
                    break;
                }
            }
        }
    })
}

/// Writes what `receiver` holds now: at shutdown, and for a one-shot command, which has no
/// writer task.
pub async fn flush(store: &Store, receiver: &mut mpsc::UnboundedReceiver<PostedStory>) {
    let mut batch = Vec::new();
    while let Ok(story) = receiver.try_recv() {
        batch.push(story);
    }
    write(store, &mut batch).await;
}

async fn write(store: &Store, batch: &mut Vec<PostedStory>) {
    if batch.is_empty() {
        return;
    }
    let stories = batch.len();
    // Handed over whole (the texts are moved into the statements); the next batch gets a
    // buffer of the same size.
    let next = Vec::with_capacity(batch.capacity());
    if let Err(error) = store.record_posted(std::mem::replace(batch, next)).await {
        tracing::warn!(stories, error = %crate::util::cause_chain(&error), "cannot record posted stories");
    }
}

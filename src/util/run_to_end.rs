//! A future that finishes even when nobody waits for it any more: dropped before it is done
//! (the client hung up, or the wait timed out), it is handed to a task of its own. Unlike
//! spawning every time, the usual case (the client waits) costs no task and no wake-up.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs `F` to its end, in the caller's task while polled (its output goes to the caller),
/// on its own task once dropped (its output is then dropped too).
pub struct RunToEnd<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    future: Option<Pin<Box<F>>>,
}

impl<F> RunToEnd<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// Wraps `future`.
    pub fn new(future: F) -> Self {
        Self {
            future: Some(Box::pin(future)),
        }
    }
}

impl<F> Future for RunToEnd<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    /// Polled again after its end, it stays pending: its output was handed over once.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Pending;
        };
        let done = future.as_mut().poll(cx);
        if done.is_ready() {
            self.future = None;
        }
        done
    }
}

impl<F> Drop for RunToEnd<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(future) = self.future.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(future);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_future_awaited_to_its_end_hands_its_output_to_the_caller() {
        let work = RunToEnd::new(async {
            tokio::task::yield_now().await;
            "posted"
        });

        assert_eq!(work.await, "posted");
    }

    #[tokio::test]
    async fn a_future_dropped_midway_still_runs_to_its_end() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let work = RunToEnd::new(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        });

        let waited = tokio::time::timeout(Duration::from_millis(5), work).await;
        assert!(waited.is_err(), "dropped before its end");
        tokio::time::sleep(Duration::from_millis(100)).await;

        assert!(finished.load(Ordering::SeqCst));
    }
}

//! A future that finishes even when nobody waits for it any more: dropped before it is done
//! (the client hung up, or the wait timed out), it is handed to a task of its own. Unlike
//! spawning every time, the usual case (the client waits) costs no task and no wake-up.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs `F` to its end, in the caller's task while polled, on its own task once dropped.
pub struct RunToEnd<F: Future<Output = ()> + Send + 'static> {
    future: Option<Pin<Box<F>>>,
}

impl<F: Future<Output = ()> + Send + 'static> RunToEnd<F> {
    /// Wraps `future`.
    pub fn new(future: F) -> Self {
        Self {
            future: Some(Box::pin(future)),
        }
    }
}

impl<F: Future<Output = ()> + Send + 'static> Future for RunToEnd<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(());
        };
        let done = future.as_mut().poll(cx);
        if done.is_ready() {
            self.future = None;
        }
        done
    }
}

impl<F: Future<Output = ()> + Send + 'static> Drop for RunToEnd<F> {
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

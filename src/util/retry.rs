//! The one retry policy for outbound calls: bounded attempts and a total time budget,
//! `Retry-After` honoured exactly, otherwise exponential backoff with full jitter.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// First backoff step; doubles each attempt.
const BASE_DELAY: Duration = Duration::from_millis(100);
/// Largest backoff step without a `Retry-After`.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// What a failed attempt allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Not retryable (a 4xx other than 429, or a failure that may repeat a write).
    No,
    /// Retryable after backoff (connect error, 5xx).
    Backoff,
    /// Retryable after exactly this long (a `Retry-After`).
    After(Duration),
}

/// Attempts and budget shared by every outbound call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Most attempts per call, the first included.
    pub max_attempts: u32,
    /// Most time spent on one call, waits included.
    pub budget: Duration,
}

/// One call's progress through the policy.
#[derive(Debug)]
pub struct Attempts {
    policy: RetryPolicy,
    started: Instant,
    made: u32,
}

impl RetryPolicy {
    /// Starts counting attempts for one call.
    pub fn start(&self) -> Attempts {
        Attempts {
            policy: *self,
            started: Instant::now(),
            made: 0,
        }
    }

    /// Runs `op` until it succeeds, `classify` says stop, or attempts or budget run out;
    /// returns the last error then.
    pub async fn run<T, E, F, Fut>(&self, mut op: F, classify: impl Fn(&E) -> Retry) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempts = self.start();
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(error) => match attempts.next_wait(classify(&error)) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(error),
                },
            }
        }
    }
}

impl Attempts {
    /// After a failed attempt: how long to wait before the next one, or `None` to give up.
    pub fn next_wait(&mut self, retry: Retry) -> Option<Duration> {
        self.made += 1;
        let wait = match retry {
            Retry::No => return None,
            Retry::After(wait) => wait,
            Retry::Backoff => full_jitter(self.made),
        };
        let spent = self.started.elapsed();
        let within_budget = spent + wait <= self.policy.budget;
        (self.made < self.policy.max_attempts && within_budget).then(|| {
            crate::telemetry::metrics::retry();
            tracing::info!(
                attempt = self.made,
                wait_ms = wait.as_millis() as u64,
                "retrying"
            );
            wait
        })
    }
}

/// A random wait between zero and the exponential step for this attempt.
fn full_jitter(attempt: u32) -> Duration {
    let step = BASE_DELAY
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_DELAY);
    // RandomState is seeded randomly per instance: enough randomness for jitter.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    step.mul_f64((random % 10_000) as f64 / 10_000.0)
}

/// Parses a `Retry-After` header given in seconds.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32, budget_secs: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            budget: Duration::from_secs(budget_secs),
        }
    }

    #[test]
    fn retry_after_is_honoured_exactly() {
        let mut attempts = policy(4, 30).start();
        assert_eq!(
            attempts.next_wait(Retry::After(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let mut attempts = policy(3, 30).start();
        assert!(attempts.next_wait(Retry::Backoff).is_some());
        assert!(attempts.next_wait(Retry::Backoff).is_some());
        assert!(
            attempts.next_wait(Retry::Backoff).is_none(),
            "third failure is the last"
        );
    }

    #[test]
    fn a_wait_beyond_the_budget_gives_up() {
        let mut attempts = policy(4, 5).start();
        assert!(
            attempts
                .next_wait(Retry::After(Duration::from_secs(6)))
                .is_none()
        );
    }

    #[test]
    fn non_retryable_failures_stop_at_once() {
        let mut attempts = policy(4, 30).start();
        assert!(attempts.next_wait(Retry::No).is_none());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let wait = full_jitter(attempt);
            let step = BASE_DELAY
                .saturating_mul(1 << attempt.min(16))
                .min(MAX_DELAY);
            assert!(wait <= step, "attempt {attempt}: {wait:?} > {step:?}");
        }
    }
}

//! Consents in progress: the `state` values handed out and their PKCE verifiers, each usable
//! once and only for ten minutes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oauth2::PkceCodeVerifier;

/// How long a consent may take.
pub const CONSENT_TTL: Duration = Duration::from_secs(600);

/// Bound on consents in progress, so unauthenticated visits cannot grow memory without limit.
const MAX_PENDING: usize = 1024;

/// The consents started and not yet finished.
#[derive(Debug, Default)]
pub struct PendingConsents {
    by_state: Mutex<HashMap<String, (Instant, PkceCodeVerifier)>>,
}

impl PendingConsents {
    /// Remembers a consent; when full, the oldest one is forgotten.
    pub fn insert(&self, state: String, verifier: PkceCodeVerifier) {
        let now = Instant::now();
        let mut pending = self.lock();
        pending.retain(|_, (started, _)| now.duration_since(*started) < CONSENT_TTL);
        if pending.len() >= MAX_PENDING {
            let oldest = pending
                .iter()
                .min_by_key(|(_, (started, _))| *started)
                .map(|(state, _)| state.clone());
            if let Some(oldest) = oldest {
                pending.remove(&oldest);
            }
        }
        pending.insert(state, (now, verifier));
    }

    /// Takes the verifier for `state` if it was handed out less than ten minutes ago;
    /// whatever the outcome, the state cannot be used again.
    pub fn take(&self, state: &str) -> Option<PkceCodeVerifier> {
        let (started, verifier) = self.lock().remove(state)?;
        (started.elapsed() < CONSENT_TTL).then_some(verifier)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, PkceCodeVerifier)>> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.by_state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_usable_once() {
        let pending = PendingConsents::default();
        pending.insert("s1".into(), PkceCodeVerifier::new("v1".into()));
        assert_eq!(
            pending.take("s1").map(|v| v.secret().clone()),
            Some("v1".into())
        );
        assert!(pending.take("s1").is_none());
        assert!(pending.take("never-issued").is_none());
    }

    #[test]
    fn the_oldest_consent_is_dropped_when_full() {
        let pending = PendingConsents::default();
        for i in 0..=MAX_PENDING {
            pending.insert(format!("s{i}"), PkceCodeVerifier::new(format!("v{i}")));
        }
        assert!(pending.take("s0").is_none());
        assert!(pending.take(&format!("s{MAX_PENDING}")).is_some());
    }
}

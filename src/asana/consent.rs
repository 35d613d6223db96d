//! Consents in progress: the `state` values handed out and their PKCE verifiers, each usable
//! once and only for ten minutes, kept in the store so that a consent started through one
//! replica can finish through another.

use std::time::Duration;

use oauth2::PkceCodeVerifier;
use secrecy::{ExposeSecret, SecretString};

use crate::store::{Store, StoreError};

/// How long a consent may take.
pub const CONSENT_TTL: Duration = Duration::from_secs(600);

/// Bound on consents in progress, so unauthenticated visits cannot grow the store without
/// limit; past it, new consents are refused until some expire (none is evicted).
const MAX_PENDING: i64 = 10_000;

/// Why a consent cannot be kept.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    /// Too many consents are in progress.
    #[error("too many consents are in progress; try again in a few minutes")]
    Full,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The consents started and not yet finished.
#[derive(Debug, Clone)]
pub struct PendingConsents {
    store: Store,
}

impl PendingConsents {
    /// Consents kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Remembers a consent.
    pub async fn insert(
        &self,
        state: &str,
        verifier: &PkceCodeVerifier,
    ) -> Result<(), PendingError> {
        let verifier = SecretString::from(verifier.secret().clone());
        if self
            .store
            .begin_consent(state, &verifier, CONSENT_TTL, MAX_PENDING)
            .await?
        {
            Ok(())
        } else {
            Err(PendingError::Full)
        }
    }

    /// Takes the verifier for `state` if it was handed out less than ten minutes ago;
    /// whatever the outcome, the state cannot be used again.
    pub async fn take(&self, state: &str) -> Result<Option<PkceCodeVerifier>, StoreError> {
        Ok(self
            .store
            .take_consent(state, CONSENT_TTL)
            .await?
            .map(|v| PkceCodeVerifier::new(v.expose_secret().to_owned())))
    }
}

//! One connection's tokens: read from the store, kept in memory until they near expiry,
//! refreshed by one process at a time across every replica (a lease on the connection's row),
//! and written to the store before a new token is used.

use std::sync::RwLock;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::oauth::{AsanaOAuth, OAuthError};
use super::token_file::{AsanaUser, StoredTokens, TokenFile};
use crate::store::{Lease, Store, StoreError};
use crate::util::retry::RetryPolicy;

/// A token expiring within this margin is refreshed before use.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// How often a process waiting for another's refresh looks at the store again.
const LEASE_POLL: Duration = Duration::from_millis(100);

/// Why no usable access token can be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Nobody has consented, or Asana revoked the grant.
    #[error("{0}")]
    NotConnected(String),
    /// The OAuth settings are incomplete, so no refresh is possible.
    #[error("OAuth settings missing: {}", .0.join(", "))]
    NotConfigured(Vec<&'static str>),
    /// The token endpoint failed for another reason.
    #[error("token refresh failed")]
    Refresh(#[source] OAuthError),
    /// The store failed.
    #[error("token store failed")]
    Storage(#[source] StoreError),
}

impl From<StoreError> for TokenError {
    fn from(error: StoreError) -> Self {
        Self::Storage(error)
    }
}

/// Holds one connection's current tokens and refreshes them.
#[derive(Debug)]
pub struct TokenManager {
    /// The Asana user whose connection this is.
    user_gid: String,
    store: Store,
    /// This process, as the holder of a refresh lease.
    owner: String,
    /// How long a refresh lease holds: the longest a refresh may take.
    lease: Duration,
    oauth: Option<AsanaOAuth>,
    missing_oauth: Vec<&'static str>,
    retry: RetryPolicy,
    current: RwLock<Option<StoredTokens>>,
    /// Held while refreshing or storing, so one refresh serves every waiting request.
    refresh: Mutex<()>,
}

impl TokenManager {
    /// The manager of `user_gid`'s connection, holding `current` (as last read).
    pub fn new(settings: &TokenSettings, user_gid: &str, current: Option<StoredTokens>) -> Self {
        Self {
            user_gid: user_gid.to_owned(),
            store: settings.store.clone(),
            owner: settings.owner.clone(),
            lease: settings.retry.budget + Duration::from_secs(5),
            oauth: settings.oauth.clone(),
            missing_oauth: settings.missing_oauth.clone(),
            retry: settings.retry,
            current: RwLock::new(current),
            refresh: Mutex::new(()),
        }
    }

    /// The Asana user whose connection this is.
    pub fn user_gid(&self) -> &str {
        &self.user_gid
    }

    /// Whether a usable token exists: `Err` says why not.
    pub async fn status(&self) -> Result<(), String> {
        if self.read().is_none() {
            // A consent may have been given through another replica.
            let _reading = self.refresh.lock().await;
            self.reload().await.map_err(|e| e.to_string())?;
        }
        match self.read().as_ref() {
            None => Err("no Asana account is connected: visit /asana/oauth/authorize".to_owned()),
            Some(tokens) if !tokens.expires_within(REFRESH_MARGIN) => Ok(()),
            Some(tokens) if tokens.refresh_token.is_none() => {
                Err("the Asana token expired and there is no refresh token".to_owned())
            }
            Some(_) if self.oauth.is_none() => Err(format!(
                "the Asana token expired and cannot be refreshed: set {}",
                self.missing_oauth.join(", ")
            )),
            Some(_) => Ok(()),
        }
    }

    /// The connected user, if any.
    pub fn user(&self) -> Option<AsanaUser> {
        self.read().as_ref().map(|t| t.user.clone())
    }

    /// An access token valid for at least another minute, refreshing first if needed.
    pub async fn access_token(&self) -> Result<SecretString, TokenError> {
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        let _refreshing = self.refresh.lock().await;
        // Another task, or another replica, may have refreshed (or consented) meanwhile.
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        self.reload().await?;
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        self.refresh_shared(None).await
    }

    /// A new access token after Asana refused `rejected`; refreshes at most once however many
    /// requests, on however many replicas, saw the same rejection.
    pub async fn refresh_after_rejection(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, TokenError> {
        let _refreshing = self.refresh.lock().await;
        self.reload().await?;
        let current = self.read().as_ref().map(|t| t.access_token.clone());
        match current {
            Some(token) if token.expose_secret() != rejected.expose_secret() => Ok(token),
            _ => self.refresh_shared(Some(rejected)).await,
        }
    }

    /// Holds the tokens of a new consent (already stored) from now on.
    pub async fn replace(&self, tokens: StoredTokens) {
        let _storing = self.refresh.lock().await;
        *self.write() = Some(tokens);
    }

    /// Forgets the tokens (the connection was disconnected elsewhere).
    pub fn forget(&self) {
        *self.write() = None;
    }

    fn fresh_token(&self) -> Option<SecretString> {
        self.read()
            .as_ref()
            .filter(|t| !t.expires_within(REFRESH_MARGIN))
            .map(|t| t.access_token.clone())
    }

    /// Reads the connection again.
    async fn reload(&self) -> Result<(), TokenError> {
        let current = self.store.connection(&self.user_gid).await?;
        *self.write() = current;
        Ok(())
    }

    /// Refreshes under the connection's lease, or waits for whoever holds it; the caller
    /// holds `self.refresh`. `rejected` is a token Asana refused although not expired.
    async fn refresh_shared(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, TokenError> {
        let usable = |tokens: &StoredTokens| {
            !tokens.expires_within(REFRESH_MARGIN)
                && rejected.is_none_or(|r| r.expose_secret() != tokens.access_token.expose_secret())
        };
        loop {
            let Some(seen) = self.read().clone() else {
                return Err(TokenError::NotConnected(
                    "no Asana account is connected".to_owned(),
                ));
            };
            if seen.refresh_token.is_none() {
                return Err(TokenError::NotConnected(
                    "the Asana token expired and there is no refresh token".to_owned(),
                ));
            }
            if self.oauth.is_none() {
                return Err(TokenError::NotConfigured(self.missing_oauth.clone()));
            }
            match self
                .store
                .take_refresh_lease(&seen.user.gid, &seen.access_token, &self.owner, self.lease)
                .await?
            {
                Lease::Taken(stored) => return self.refresh_leased(stored).await,
                Lease::Changed(stored) => {
                    let token = stored.access_token.clone();
                    let fresh = usable(&stored);
                    *self.write() = Some(stored);
                    if fresh {
                        return Ok(token);
                    }
                }
                Lease::Held(_) => {
                    // Another replica is refreshing: its token will be in the store.
                    tokio::time::sleep(LEASE_POLL).await;
                    self.reload().await?;
                    if let Some(stored) = self.read().as_ref().filter(|t| usable(t)) {
                        return Ok(stored.access_token.clone());
                    }
                }
                Lease::Gone => {
                    *self.write() = None;
                    return Err(TokenError::NotConnected(
                        "no Asana account is connected".to_owned(),
                    ));
                }
            }
        }
    }

    /// Calls Asana's token endpoint under the lease, then stores the result.
    async fn refresh_leased(&self, stored: StoredTokens) -> Result<SecretString, TokenError> {
        let (Some(refresh_token), Some(oauth)) = (stored.refresh_token.clone(), &self.oauth) else {
            self.store
                .release_refresh_lease(&stored.user.gid, &self.owner)
                .await?;
            return Err(TokenError::NotConfigured(self.missing_oauth.clone()));
        };
        tracing::info!("refreshing the Asana access token");
        let refreshed = self
            .retry
            .run(|| oauth.refresh(&refresh_token), OAuthError::retry)
            .await;
        let granted = match refreshed {
            Ok(granted) => granted,
            Err(error) if error.is_invalid_grant() => {
                // Another process may have refreshed meanwhile (its lease expired under it):
                // a refresh token Asana rotated there is not a revoked grant.
                let now = self.store.connection(&stored.user.gid).await?;
                if let Some(now) = now.filter(|t| {
                    t.refresh_token.as_ref().map(ExposeSecret::expose_secret)
                        != Some(refresh_token.expose_secret())
                }) {
                    let token = now.access_token.clone();
                    *self.write() = Some(now);
                    return Ok(token);
                }
                crate::telemetry::metrics::refresh(crate::telemetry::metrics::Outcome::Refused);
                tracing::warn!(error = %error, "Asana refused the refresh token; forgetting it");
                self.store.revoke_connection(&stored.user.gid).await?;
                *self.write() = None;
                return Err(TokenError::NotConnected(
                    "Asana refused the refresh token (access revoked or expired)".to_owned(),
                ));
            }
            Err(error) => {
                crate::telemetry::metrics::refresh(crate::telemetry::metrics::Outcome::Failed);
                self.store
                    .release_refresh_lease(&stored.user.gid, &self.owner)
                    .await?;
                return Err(TokenError::Refresh(error));
            }
        };
        let access_token = granted.access_token.clone();
        let tokens = StoredTokens {
            access_token: granted.access_token,
            // Asana usually sends no new refresh token: the old one stays valid.
            refresh_token: granted.refresh_token.or(Some(refresh_token)),
            expires_at: granted.expires_at,
            user: stored.user,
        };
        // Stored before anyone uses it: a rotated refresh token is never lost.
        self.store.save_refreshed(&tokens, &self.owner).await?;
        *self.write() = Some(tokens);
        crate::telemetry::metrics::refresh(crate::telemetry::metrics::Outcome::Ok);
        Ok(access_token)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<StoredTokens>> {
        // Writers only assign whole values, so a poisoned lock still holds a consistent one.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<StoredTokens>> {
        self.current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What every connection's token manager shares.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Where tokens are kept.
    pub store: Store,
    /// This process, as the holder of refresh leases.
    pub owner: String,
    /// The OAuth app, when configured (refreshes need it).
    pub oauth: Option<AsanaOAuth>,
    /// The OAuth settings missing, for messages.
    pub missing_oauth: Vec<&'static str>,
    /// The retry policy of refreshes.
    pub retry: RetryPolicy,
}

/// Moves the token file of an earlier version into an empty store, then removes the file:
/// plaintext tokens do not stay behind once the store holds them.
pub async fn import_token_file(store: &Store, file: TokenFile) -> Result<(), StoreError> {
    file.remove_stale_temp_files().await;
    let tokens = match file.load().await {
        Ok(Some(tokens)) => tokens,
        Ok(None) => return Ok(()),
        Err(error) => {
            tracing::error!(error = %crate::util::cause_chain(&error), "cannot read the token file of an earlier version; not imported");
            return Ok(());
        }
    };
    if !store.has_connections().await? {
        store.save_consent(&tokens).await?;
        tracing::info!(path = %file.path().display(), user = %tokens.user.name, "imported the token file into the store");
    }
    if let Err(error) = file.remove().await {
        tracing::warn!(error = %crate::util::cause_chain(&error), "cannot remove the imported token file");
    }
    Ok(())
}

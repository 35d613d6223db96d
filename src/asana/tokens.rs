//! The connected user's tokens: loaded once, refreshed before expiry by one request at a
//! time (single-flight), and persisted before a new token is used.

use std::sync::RwLock;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::oauth::{AsanaOAuth, GrantedTokens, OAuthError};
use super::token_file::{AsanaUser, StoredTokens, TokenFile, TokenFileError};
use crate::util::retry::RetryPolicy;

/// A token expiring within this margin is refreshed before use.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

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
    /// The token file could not be written.
    #[error("token store failed")]
    Storage(#[source] TokenFileError),
}

/// Holds the current tokens and refreshes them.
#[derive(Debug)]
pub struct TokenManager {
    file: TokenFile,
    oauth: Option<AsanaOAuth>,
    missing_oauth: Vec<&'static str>,
    retry: RetryPolicy,
    current: RwLock<Option<StoredTokens>>,
    /// Held while refreshing or storing, so one refresh serves every waiting request.
    refresh: Mutex<()>,
}

impl TokenManager {
    /// Loads the token file; an unreadable file is logged and treated as "not connected"
    /// so the service still starts and can be re-authorized.
    pub async fn load(
        file: TokenFile,
        oauth: Option<AsanaOAuth>,
        missing_oauth: Vec<&'static str>,
        retry: RetryPolicy,
    ) -> Self {
        file.remove_stale_temp_files().await;
        let current = match file.load().await {
            Ok(tokens) => tokens,
            Err(error) => {
                tracing::error!(error = %crate::util::cause_chain(&error), "cannot load the token file; authorize again");
                None
            }
        };
        if let Some(tokens) = &current {
            tracing::info!(user = %tokens.user.name, "loaded Asana tokens");
        }
        Self {
            file,
            oauth,
            missing_oauth,
            retry,
            current: RwLock::new(current),
            refresh: Mutex::new(()),
        }
    }

    /// Whether a usable token exists: `Err` says why not.
    pub fn status(&self) -> Result<(), String> {
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
        // Whoever held the lock before us may have refreshed already.
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        self.refresh_locked().await
    }

    /// A new access token after Asana refused `rejected`; refreshes at most once however many
    /// requests saw the same rejection.
    pub async fn refresh_after_rejection(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, TokenError> {
        let _refreshing = self.refresh.lock().await;
        let current = self.read().as_ref().map(|t| t.access_token.clone());
        match current {
            Some(token) if token.expose_secret() != rejected.expose_secret() => Ok(token),
            _ => self.refresh_locked().await,
        }
    }

    /// Stores the tokens of a new consent.
    pub async fn store_consent(
        &self,
        granted: GrantedTokens,
        user: AsanaUser,
    ) -> Result<(), TokenError> {
        let tokens = StoredTokens {
            access_token: granted.access_token,
            refresh_token: granted.refresh_token,
            expires_at: granted.expires_at,
            user,
        };
        let _storing = self.refresh.lock().await;
        self.persist(tokens).await
    }

    fn fresh_token(&self) -> Option<SecretString> {
        self.read()
            .as_ref()
            .filter(|t| !t.expires_within(REFRESH_MARGIN))
            .map(|t| t.access_token.clone())
    }

    /// Refreshes; the caller holds `self.refresh`.
    async fn refresh_locked(&self) -> Result<SecretString, TokenError> {
        let Some(stored) = self.read().clone() else {
            return Err(TokenError::NotConnected(
                "no Asana account is connected".to_owned(),
            ));
        };
        let Some(refresh_token) = stored.refresh_token.clone() else {
            return Err(TokenError::NotConnected(
                "the Asana token expired and there is no refresh token".to_owned(),
            ));
        };
        let Some(oauth) = &self.oauth else {
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
                crate::telemetry::metrics::refresh(crate::telemetry::metrics::Outcome::Refused);
                tracing::warn!(error = %error, "Asana refused the refresh token; forgetting it");
                self.forget().await?;
                return Err(TokenError::NotConnected(
                    "Asana refused the refresh token (access revoked or expired)".to_owned(),
                ));
            }
            Err(error) => {
                crate::telemetry::metrics::refresh(crate::telemetry::metrics::Outcome::Failed);
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
        // Written to disk before anyone uses it: a rotated refresh token is never lost.
        self.persist(tokens).await?;
        crate::telemetry::metrics::refresh(crate::telemetry::metrics::Outcome::Ok);
        Ok(access_token)
    }

    async fn persist(&self, tokens: StoredTokens) -> Result<(), TokenError> {
        self.file.save(&tokens).await.map_err(TokenError::Storage)?;
        *self.write() = Some(tokens);
        Ok(())
    }

    async fn forget(&self) -> Result<(), TokenError> {
        self.file.remove().await.map_err(TokenError::Storage)?;
        *self.write() = None;
        Ok(())
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

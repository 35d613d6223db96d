//! Every person's connection, each with its own tokens: found by user gid or email, the
//! default one (marked by an operator, else the oldest) acting when nobody is named. A consent
//! creates or updates the consenting user's connection and never touches anybody else's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::oauth::GrantedTokens;
use super::token_file::{AsanaUser, StoredTokens, TokenFile};
use super::tokens::{TokenError, TokenManager, TokenSettings, import_token_file};
use crate::store::StoreError;

/// The connections this process has used, and which one is the default.
#[derive(Debug)]
pub struct Connections {
    settings: TokenSettings,
    managers: RwLock<HashMap<String, Arc<TokenManager>>>,
    /// The default connection's user gid, as last read from the store.
    default_user: RwLock<Option<String>>,
}

fn not_connected() -> TokenError {
    TokenError::NotConnected(
        "no Asana account is connected: visit /asana/oauth/authorize".to_owned(),
    )
}

impl Connections {
    /// Reads which connection is the default, importing the token file of an earlier version
    /// first if the store has no connection (the file is removed once the import is committed).
    pub async fn load(settings: TokenSettings, legacy_file: PathBuf) -> Result<Self, StoreError> {
        import_token_file(&settings.store, TokenFile::new(legacy_file)).await?;
        let connections = Self {
            settings,
            managers: RwLock::new(HashMap::new()),
            default_user: RwLock::new(None),
        };
        connections.refresh().await?;
        if let Ok(default) = connections.default().await
            && let Some(user) = default.user()
        {
            tracing::info!(user = %user.name, "loaded Asana tokens of the default connection");
        }
        Ok(connections)
    }

    /// The connection that acts when nobody is named.
    pub async fn default(&self) -> Result<Arc<TokenManager>, TokenError> {
        let cached = self.read_default();
        let user_gid = match cached {
            Some(user_gid) => user_gid,
            None => {
                // A consent may have been given through another replica.
                self.refresh().await?;
                self.read_default().ok_or_else(not_connected)?
            }
        };
        self.get(&user_gid).await
    }

    /// The connection of `user_gid`.
    pub async fn get(&self, user_gid: &str) -> Result<Arc<TokenManager>, TokenError> {
        if let Some(manager) = self.read_managers().get(user_gid) {
            return Ok(Arc::clone(manager));
        }
        let tokens = self
            .settings
            .store
            .connection(user_gid)
            .await?
            .ok_or_else(|| {
                TokenError::NotConnected(format!("Asana user {user_gid} is not connected"))
            })?;
        Ok(self.hold(user_gid, Some(tokens)))
    }

    /// The connection `who` names: a user gid or an email.
    pub async fn find(&self, who: &str) -> Result<Arc<TokenManager>, TokenError> {
        let user_gid = self
            .settings
            .store
            .find_user(who)
            .await?
            .ok_or_else(|| TokenError::NotConnected(format!("no connection is named {who}")))?;
        self.get(&user_gid).await
    }

    /// Stores a consent as the consenting user's connection and holds its tokens.
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
        self.settings.store.save_consent(&tokens).await?;
        let user_gid = tokens.user.gid.clone();
        let held = self.read_managers().get(&user_gid).cloned();
        match held {
            Some(manager) => manager.replace(tokens).await,
            None => {
                self.hold(&user_gid, Some(tokens));
            }
        }
        if self.read_default().is_none() {
            self.refresh().await?;
        }
        Ok(())
    }

    /// Follows what other processes changed: which connection is the default, and which are
    /// no longer connected (their tokens are dropped here too).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let connected = self.settings.store.connected_users().await?;
        *self
            .default_user
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = connected.first().cloned();
        let mut managers = self
            .managers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        managers.retain(|user_gid, manager| {
            let keep = connected.contains(user_gid);
            if !keep {
                manager.forget();
            }
            keep
        });
        Ok(())
    }

    /// Whether the default connection has a usable token: `Err` says why not.
    pub async fn status(&self) -> Result<(), String> {
        match self.default().await {
            Ok(manager) => manager.status().await,
            Err(error) => Err(error.to_string()),
        }
    }

    /// The default connection's user, if it is held in memory.
    pub fn default_user(&self) -> Option<AsanaUser> {
        let user_gid = self.read_default()?;
        self.read_managers().get(&user_gid)?.user()
    }

    fn hold(&self, user_gid: &str, tokens: Option<StoredTokens>) -> Arc<TokenManager> {
        let mut managers = self
            .managers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            managers
                .entry(user_gid.to_owned())
                .or_insert_with(|| Arc::new(TokenManager::new(&self.settings, user_gid, tokens))),
        )
    }

    fn read_default(&self) -> Option<String> {
        self.default_user
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn read_managers(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<TokenManager>>> {
        // Writers only insert or remove whole entries, so a poisoned lock is still consistent.
        self.managers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

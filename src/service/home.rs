//! The home page's side of things: a browser session after a consent (a random id in an
//! HttpOnly cookie, only its hash stored, 30 days), the CSRF token its forms carry, and what
//! a signed-in person may do: see their new key once, make a new one, disconnect.

use secrecy::SecretString;
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::store::{StoreError, now_ms};
use crate::util::random::secret_hex;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "linker_session";
/// How long a session lasts, in seconds.
pub const SESSION_SECS: u64 = 30 * 24 * 3600;

/// A signed-in person, as their session says.
#[derive(Debug, Clone)]
pub struct Visitor {
    id_hash: String,
    /// Whose connection it is.
    pub user_gid: String,
    /// The token the session's forms carry.
    pub csrf: String,
}

fn hash(id: &str) -> String {
    crate::util::digest::sha256_hex(id.as_bytes())
}

/// Opens a session for `user_gid` after a consent; returns the cookie's value. A person
/// without a working key gets one, held to be shown once.
pub async fn sign_in(state: &AppState, user_gid: &str) -> Result<SecretString, StoreError> {
    let id = secret_hex(32);
    let id_hash = hash(&id);
    let expires_at = now_ms() + i64::try_from(SESSION_SECS * 1000).unwrap_or(i64::MAX);
    state
        .store
        .open_session(&id_hash, user_gid, &secret_hex(16), expires_at)
        .await?;
    if state.store.active_api_keys(user_gid).await? == 0 {
        let issued = state.keys.issue(user_gid).await?;
        state.store.hold_key_to_show(&id_hash, &issued.key).await?;
    }
    Ok(SecretString::from(id))
}

/// The person whose session `cookie` names, if it is open and their connection still is.
pub async fn visitor(
    state: &AppState,
    cookie: Option<&str>,
) -> Result<Option<Visitor>, StoreError> {
    let Some(id) = cookie.filter(|id| !id.is_empty()) else {
        return Ok(None);
    };
    let id_hash = hash(id);
    let Some(session) = state.store.session(&id_hash).await? else {
        return Ok(None);
    };
    if state.store.connection(&session.user_gid).await?.is_none() {
        state.store.end_session(&id_hash).await?;
        return Ok(None);
    }
    Ok(Some(Visitor {
        id_hash,
        user_gid: session.user_gid,
        csrf: session.csrf,
    }))
}

impl Visitor {
    /// Whether a form's `presented` token is this session's.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }

    /// The new key to show, once: `None` on every later page.
    pub async fn take_key_to_show(
        &self,
        state: &AppState,
    ) -> Result<Option<SecretString>, StoreError> {
        state.store.take_key_to_show(&self.id_hash).await
    }

    /// Replaces the person's keys with a new one, held to be shown once.
    pub async fn new_key(&self, state: &AppState) -> Result<(), StoreError> {
        state.keys.revoke_all(&self.user_gid).await?;
        let issued = state.keys.issue(&self.user_gid).await?;
        state
            .store
            .hold_key_to_show(&self.id_hash, &issued.key)
            .await
    }

    /// Disconnects the person: the grant is revoked at Asana (a failure there is logged, and
    /// the tokens are deleted all the same), their tokens and keys deleted, the session ended.
    pub async fn disconnect(&self, state: &AppState) -> Result<(), StoreError> {
        let tokens = state.store.connection(&self.user_gid).await?;
        if let (Some(oauth), Some(refresh)) = (
            &state.oauth,
            tokens.as_ref().and_then(|t| t.refresh_token.as_ref()),
        ) && let Err(error) = oauth.revoke(refresh).await
        {
            tracing::warn!(user_gid = %self.user_gid, %error, "Asana did not confirm the revocation; the tokens are deleted here all the same");
        }
        // Revokes the keys in the store too.
        state.store.disconnect(&self.user_gid).await?;
        state.keys.forget(&self.user_gid);
        if let Err(error) = state.attacher.connections.refresh().await {
            tracing::warn!(error = %crate::util::cause_chain(&error), "cannot re-read the connections after a disconnect");
        }
        state.store.end_session(&self.id_hash).await?;
        tracing::info!(user_gid = %self.user_gid, "Asana account disconnected");
        Ok(())
    }
}

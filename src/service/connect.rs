//! Connecting an Asana account: starting a consent and finishing it at the callback.

use url::Url;

use crate::app::AppState;
use crate::asana::{AsanaError, AsanaUser, OAuthError, Profile, TokenError};
use crate::domain::{AllowedWorkspaces, FirstConnection};
use crate::store::StoreError;

/// Why a consent could not be started or finished.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The OAuth settings are incomplete.
    #[error("OAuth is not configured: set {}", .0.join(", "))]
    NotConfigured(Vec<&'static str>),
    /// The user declined, or Asana reported an error on the redirect.
    #[error("Asana returned {error}")]
    Denied {
        /// Asana's `error` parameter.
        error: String,
    },
    /// The `state` is missing, unknown, expired, reused, or not this browser's.
    #[error("the consent state is missing, unknown, expired, already used or not this browser's")]
    InvalidState,
    /// The callback has no `code`.
    #[error("the callback has no code")]
    MissingCode,
    /// The code exchange failed.
    #[error("the code exchange failed")]
    Exchange(#[source] OAuthError),
    /// Reading the user's profile failed.
    #[error("reading the Asana user failed")]
    Profile(#[source] AsanaError),
    /// Storing the tokens failed.
    #[error("storing the tokens failed")]
    Store(#[source] TokenError),
    /// The store could not record or read the consent.
    #[error("the consent could not be recorded or read")]
    Pending(#[source] StoreError),
    /// The user's workspaces are not among those allowed to connect (`ALLOWED_WORKSPACES`).
    #[error("none of the user's workspaces may connect: {}", .0.join(", "))]
    NotAllowed(Vec<String>),
}

/// The query Asana sends back to the redirect URI.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    /// Authorization code, on success.
    pub code: Option<String>,
    /// The state we handed out.
    pub state: Option<String>,
    /// OAuth error code, e.g. `access_denied`.
    pub error: Option<String>,
}

/// Starts a consent: returns Asana's consent URL and the cookie that carries the consent in
/// the browser that starts it.
pub fn start(state: &AppState) -> Result<(Url, String), ConnectError> {
    let oauth = state
        .oauth
        .as_ref()
        .ok_or_else(|| ConnectError::NotConfigured(state.missing_oauth.clone()))?;
    let consent = oauth.consent();
    let cookie = state.consents.begin(&consent.state, &consent.verifier);
    Ok((consent.url, cookie))
}

/// Finishes a consent. The state is checked (and spent) before anything is sent to Asana.
#[tracing::instrument(skip_all)]
pub async fn finish(
    state: &AppState,
    params: CallbackParams,
    browser_cookie: Option<&str>,
) -> Result<AsanaUser, ConnectError> {
    let oauth = state
        .oauth
        .as_ref()
        .ok_or_else(|| ConnectError::NotConfigured(state.missing_oauth.clone()))?;
    // The state first: an `error` on a link this browser did not start says nothing true.
    let verifier = match (params.state.as_deref(), browser_cookie) {
        (Some(sent), Some(cookie)) => state
            .consents
            .finish(cookie, sent)
            .await
            .map_err(ConnectError::Pending)?,
        _ => None,
    };
    let verifier = verifier.ok_or(ConnectError::InvalidState)?;
    if let Some(error) = params.error {
        return Err(ConnectError::Denied { error });
    }
    let code = params.code.ok_or(ConnectError::MissingCode)?;
    let granted = oauth
        .exchange_code(code, verifier)
        .await
        .map_err(ConnectError::Exchange)?;
    // Always read: the workspaces decide whether this person may connect at all.
    let profile = state
        .attacher
        .asana
        .profile(&granted.access_token)
        .await
        .map_err(ConnectError::Profile)?;
    admit(state, &profile).await?;
    let user = profile.user;
    state
        .attacher
        .connections
        .store_consent(granted, user.clone())
        .await
        .map_err(ConnectError::Store)?;
    state
        .store
        .record_workspaces(&user.gid, &profile.workspaces)
        .await
        .map_err(ConnectError::Pending)?;
    tracing::info!(user_gid = %user.gid, "Asana account connected");
    Ok(user)
}

/// Refuses a person none of whose workspaces may connect; nothing of theirs is stored.
async fn admit(state: &AppState, profile: &Profile) -> Result<(), ConnectError> {
    let first = state
        .store
        .first_connection()
        .await
        .map_err(ConnectError::Pending)?;
    let (first_user, known) = match first {
        Some((user_gid, known)) => (Some(user_gid), known),
        None => (None, FirstConnection::None),
    };
    // The first person may always consent again (it records workspaces an upgrade lacked).
    let own_first = first_user.as_deref() == Some(profile.user.gid.as_str())
        && state.allowed_workspaces == AllowedWorkspaces::FirstConnection;
    if own_first || state.allowed_workspaces.admits(&profile.workspaces, &known) {
        return Ok(());
    }
    tracing::warn!(user_gid = %profile.user.gid, "a consent from a workspace not allowed to connect was refused");
    Err(ConnectError::NotAllowed(
        profile.workspaces.iter().map(|w| w.name.clone()).collect(),
    ))
}

//! `mcp-asana-linker webhooks register|list|delete`: managing Asana webhooks with a
//! connection's token (the default one, or the one `--as` names). A webhook's rules act as the
//! connection that registered it.

use serde_json::json;
use url::Url;

use super::hooks::{HookId, HookStoreError};
use crate::app::AppState;
use crate::asana::{AsanaError, TokenError, TokenManager, WebhookInfo};

/// Why a webhook command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No usable token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Asana refused or failed.
    #[error(transparent)]
    Asana(#[from] AsanaError),
    /// The hook file failed.
    #[error(transparent)]
    Store(#[from] HookStoreError),
    /// The target URL is unusable.
    #[error(
        "invalid --target {0}: expected the service's public base URL, e.g. https://x.ngrok.app"
    )]
    Target(String),
    /// Asana created the webhook but the handshake never reached this service.
    #[error(
        "Asana created webhook {0} but the handshake did not reach this service's store; is the service running with the same TOKEN_STORE_PATH?"
    )]
    NoHandshake(String),
    /// The secrets differ.
    #[error(
        "the secret Asana returned for webhook {0} differs from the handshake's; delete it and register again"
    )]
    SecretMismatch(String),
}

/// A registered webhook.
#[derive(Debug, Clone)]
pub struct Registered {
    /// Asana's webhook gid.
    pub webhook_gid: String,
    /// The hook id in the target path.
    pub hook_id: String,
    /// The target URL.
    pub target: String,
}

/// Events the linker acts on: new comments, tasks added to projects, tag changes.
fn filters() -> serde_json::Value {
    json!([
        {"resource_type": "story", "resource_subtype": "comment_added", "action": "added"},
        {"resource_type": "task", "action": "added"},
        {"resource_type": "task", "action": "changed", "fields": ["tags"]}
    ])
}

/// Registers a webhook on `resource` delivering to `{base}/asana/webhooks/{random id}`. The
/// service must be running and reachable at `base`: Asana performs the handshake before it
/// answers.
pub async fn register(
    state: &AppState,
    acting: &TokenManager,
    resource: &str,
    base: &str,
) -> Result<Registered, AdminError> {
    let base = Url::parse(base)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| AdminError::Target(base.to_owned()))?;
    let hook_id = HookId::parse(&crate::util::random::hex_id())
        .map_err(|_| AdminError::Target(base.to_string()))?;
    let target = format!(
        "{}/asana/webhooks/{}",
        base.as_str().trim_end_matches('/'),
        hook_id.as_str()
    );
    state.hooks.announce(&hook_id, resource, &target).await?;
    state
        .store
        .set_hook_owner(hook_id.as_str(), acting.user_gid())
        .await?;
    let token = acting.access_token().await?;
    let created = state
        .attacher
        .asana
        .create_webhook(&token, resource, &target, filters())
        .await?;
    let webhook_gid = created.data.gid.clone();
    state.hooks.registered(&hook_id, &webhook_gid).await?;
    let stored = state.hooks.secret(&hook_id).await?;
    match (stored, created.secret) {
        (None, _) => return Err(AdminError::NoHandshake(webhook_gid)),
        (Some(stored), Some(returned))
            if secrecy::ExposeSecret::expose_secret(&stored) != returned =>
        {
            return Err(AdminError::SecretMismatch(webhook_gid));
        }
        _ => {}
    }
    Ok(Registered {
        webhook_gid,
        hook_id: hook_id.as_str().to_owned(),
        target,
    })
}

/// The workspace's webhooks, as Asana lists them.
pub async fn list(
    state: &AppState,
    acting: &TokenManager,
    workspace: &str,
) -> Result<Vec<WebhookInfo>, AdminError> {
    let token = acting.access_token().await?;
    Ok(state
        .attacher
        .asana
        .list_webhooks(&token, workspace)
        .await?)
}

/// Deletes a webhook in Asana and forgets its secret.
pub async fn delete(
    state: &AppState,
    acting: &TokenManager,
    webhook_gid: &str,
) -> Result<(), AdminError> {
    let token = acting.access_token().await?;
    state
        .attacher
        .asana
        .delete_webhook(&token, webhook_gid)
        .await?;
    state.hooks.forget(webhook_gid).await?;
    Ok(())
}

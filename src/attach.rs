//! Attaching a context to a task: token, context, comment. Shared by the HTTP API and,
//! later, the CLI and webhooks.

use serde::Serialize;

use crate::app::AppState;
use crate::asana::{AsanaError, CommentDraft, TokenError, post_comment};
use crate::context::{ContextError, SourceRef};
use crate::domain::AttachRequest;

/// Why an attach failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Settings needed for attaching are missing.
    #[error("missing settings: {}", .0.join(", "))]
    NotConfigured(Vec<&'static str>),
    /// No usable Asana token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The context could not be fetched.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Asana refused or failed the comment.
    #[error(transparent)]
    Asana(#[from] AsanaError),
}

/// The comment that was created.
#[derive(Debug, Clone, Serialize)]
pub struct Attached {
    /// Gid of the new story.
    pub story_gid: String,
    /// The task it is on.
    pub task_gid: String,
    /// The context that was posted.
    pub context_name: String,
    /// Where the context came from.
    pub source: SourceRef,
}

/// Fetches the context and posts it as a comment on the task. A token Asana refuses is
/// refreshed once and the post retried once: a 401 means nothing was created.
#[tracing::instrument(skip_all, fields(task_gid = %request.task_gid, context_name = %request.context_name))]
pub async fn attach_context(
    state: &AppState,
    request: &AttachRequest,
) -> Result<Attached, AttachError> {
    let Some(source) = &state.context else {
        let mut missing = vec!["MCP_SERVER_URL or MCP_SERVER_COMMAND"];
        missing.extend(&state.missing_oauth);
        return Err(AttachError::NotConfigured(missing));
    };
    let token = state.tokens.access_token().await?;
    let context = source
        .fetch(&request.context_name, &request.arguments)
        .await?;
    let task = &request.task_gid;
    let author = state.tokens.user().map(|user| user.gid);
    let draft = CommentDraft {
        task,
        text: &context.text,
        author_gid: author.as_deref(),
    };
    let story = match post_comment(&state.asana, &state.retry, &token, draft).await {
        Err(AsanaError::Unauthorized) => {
            tracing::info!("Asana refused the access token; refreshing once");
            let token = state.tokens.refresh_after_rejection(&token).await?;
            post_comment(&state.asana, &state.retry, &token, draft).await?
        }
        result => result?,
    };
    tracing::info!(story_gid = %story.gid, "context attached");
    Ok(Attached {
        story_gid: story.gid,
        task_gid: task.to_string(),
        context_name: request.context_name.to_string(),
        source: context.source,
    })
}

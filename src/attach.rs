//! Attaching a context to a task: token, context, rendering, comment(s) or custom field.
//! Shared by the HTTP API and, later, the CLI and webhooks.

use std::future::Future;

use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Serialize;

use crate::app::AppState;
use crate::asana::{AsanaError, CommentDraft, TokenError, post_comment};
use crate::context::{Context, ContextError, ContextSource, SourceRef};
use crate::domain::{AttachRequest, Target};
use crate::render::{self, CommentBody, Format, Layout, TooLarge, xml_safe};

/// Asana's limit on a text custom field's value.
const FIELD_MAX_CHARS: usize = 1024;
/// Ends a custom field value that was cut to fit.
const TRUNCATED: &str = "… [truncated by mcp-asana-linker]";

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
    /// Asana refused or failed the write.
    #[error(transparent)]
    Asana(#[from] AsanaError),
    /// The context needs more comments than allowed.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

/// What was written.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attached {
    /// The task written to.
    pub task_gid: String,
    /// The context that was posted.
    pub context_name: String,
    /// Where the context came from.
    pub source: SourceRef,
    /// The comments or the field.
    #[serde(flatten)]
    pub written: Written,
}

/// The comments posted, or the field set.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Written {
    /// Comments, in order.
    Comments {
        /// The first comment's gid.
        story_gid: String,
        /// Every comment's gid, in order.
        story_gids: Vec<String>,
    },
    /// A text custom field.
    CustomField {
        /// The field set.
        custom_field_gid: String,
        /// Whether the text was cut to Asana's limit.
        truncated: bool,
    },
}

impl Attached {
    /// 201 for new comments, 200 for a field update.
    pub fn status(&self) -> StatusCode {
        match self.written {
            Written::Comments { .. } => StatusCode::CREATED,
            Written::CustomField { .. } => StatusCode::OK,
        }
    }
}

/// What an attach would write, without writing it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// Where the context came from.
    pub source: SourceRef,
    /// The format used.
    pub format: Format,
    /// The comments (`html_text` or `text`), in order; empty for a custom field target.
    pub parts: Vec<PreviewPart>,
    /// The custom field's value, for a custom field target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_field_text: Option<String>,
}

/// One comment of a preview.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreviewPart {
    /// The field it would be sent as: `html_text` or `text`.
    pub field: &'static str,
    /// What would be sent.
    pub content: String,
    /// Its length as Asana counts it.
    pub chars: usize,
}

/// Fetches the context and writes it to the task. A token Asana refuses is refreshed once and
/// the write retried once: a 401 means nothing was written.
#[tracing::instrument(skip_all, fields(task_gid = %request.task_gid, context_name = %request.context_name))]
pub async fn attach_context(
    state: &AppState,
    request: &AttachRequest,
) -> Result<Attached, AttachError> {
    let source = source(state)?;
    let mut token = state.tokens.access_token().await?;
    let context = source
        .fetch(&request.context_name, &request.arguments)
        .await?;
    let task = &request.task_gid;
    let written = match &request.target {
        Target::Comment { pin } => {
            let (_, bodies) = comments(state, request, &context)?;
            let author = state.tokens.user().map(|user| user.gid);
            let mut story_gids = Vec::with_capacity(bodies.len());
            for (i, body) in bodies.iter().enumerate() {
                let draft = CommentDraft {
                    task,
                    body,
                    pin: *pin && i == 0,
                    author_gid: author.as_deref(),
                };
                let story = authorized(state, &mut token, |token| async move {
                    post_comment(&state.asana, &state.retry, &token, draft).await
                })
                .await?;
                crate::metrics::story_posted();
                // Remembered so webhook rules never act on the linker's own comments.
                if state.hooks.in_use() {
                    state.webhook_seen.remember(&format!("story:{}", story.gid));
                }
                story_gids.push(story.gid);
            }
            Written::Comments {
                story_gid: story_gids.first().cloned().unwrap_or_default(),
                story_gids,
            }
        }
        Target::CustomField(field) => {
            let (text, truncated) = field_text(&context.text);
            let text = &text;
            authorized(state, &mut token, |token| async move {
                state
                    .retry
                    .run(
                        || state.asana.set_text_field(&token, task, field, text),
                        AsanaError::retry,
                    )
                    .await
            })
            .await?;
            Written::CustomField {
                custom_field_gid: field.as_str().to_owned(),
                truncated,
            }
        }
    };
    tracing::info!(?written, "context attached");
    Ok(Attached {
        task_gid: task.to_string(),
        context_name: request.context_name.to_string(),
        source: context.source,
        written,
    })
}

/// What `attach_context` would write, without calling Asana.
pub async fn preview_context(
    state: &AppState,
    request: &AttachRequest,
) -> Result<Preview, AttachError> {
    let context = source(state)?
        .fetch(&request.context_name, &request.arguments)
        .await?;
    let (format, parts, custom_field_text) = match &request.target {
        Target::Comment { .. } => {
            let (format, bodies) = comments(state, request, &context)?;
            let parts = bodies
                .into_iter()
                .map(|body| PreviewPart {
                    chars: body.len(),
                    field: match body {
                        CommentBody::Html(_) => "html_text",
                        CommentBody::Text(_) => "text",
                    },
                    content: match body {
                        CommentBody::Html(s) | CommentBody::Text(s) => s,
                    },
                })
                .collect();
            (format, parts, None)
        }
        Target::CustomField(_) => (Format::Plain, Vec::new(), Some(field_text(&context.text).0)),
    };
    Ok(Preview {
        source: context.source,
        format,
        parts,
        custom_field_text,
    })
}

fn source(state: &AppState) -> Result<&ContextSource, AttachError> {
    state.context.as_ref().ok_or_else(|| {
        let mut missing = vec!["MCP_SERVER_URL or MCP_SERVER_COMMAND"];
        missing.extend(&state.missing_oauth);
        AttachError::NotConfigured(missing)
    })
}

/// The comments for this context: format from the request or the MIME type, header and
/// footer as configured, split to Asana's limit.
fn comments(
    state: &AppState,
    request: &AttachRequest,
    context: &Context,
) -> Result<(Format, Vec<CommentBody>), TooLarge> {
    let format = request
        .format
        .unwrap_or_else(|| Format::for_mime_type(context.mime_type.as_deref()));
    let layout = Layout {
        max_chars: state.comments.max_chars,
        max_parts: state.comments.max_parts,
        header: state
            .comments
            .header
            .then(|| format!("Context {} from {}", request.context_name, context.origin)),
        footer: request.footer,
    };
    Ok((format, render::render(&context.text, format, &layout)?))
}

/// The context as a text field value, cut to Asana's limit with a marker.
fn field_text(text: &str) -> (String, bool) {
    let text = xml_safe(text);
    if text.chars().count() <= FIELD_MAX_CHARS {
        return (text, false);
    }
    let keep = FIELD_MAX_CHARS - TRUNCATED.chars().count();
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(TRUNCATED);
    (cut, true)
}

/// Runs an Asana write; if Asana refuses the token, refreshes once and runs it once more.
async fn authorized<T, F, Fut>(
    state: &AppState,
    token: &mut SecretString,
    write: F,
) -> Result<T, AttachError>
where
    F: Fn(SecretString) -> Fut,
    Fut: Future<Output = Result<T, AsanaError>>,
{
    match write(token.clone()).await {
        Err(AsanaError::Unauthorized) => {
            tracing::info!("Asana refused the access token; refreshing once");
            *token = state.tokens.refresh_after_rejection(token).await?;
            Ok(write(token.clone()).await?)
        }
        result => Ok(result?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_text_is_cut_to_1024_characters_with_a_marker() {
        let (short, cut) = field_text("short");
        assert_eq!((short.as_str(), cut), ("short", false));

        let (long, cut) = field_text(&"é".repeat(2000));

        assert!(cut);
        assert_eq!(long.chars().count(), FIELD_MAX_CHARS);
        assert!(long.ends_with(TRUNCATED));
    }
}

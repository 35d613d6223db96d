//! Attaching a context to a task: token, context, rendering, comment(s) or custom field.
//! One [`Attacher`], built once, serves the HTTP API, the CLI and the webhook workers.

use std::future::Future;
use std::sync::Arc;

use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Serialize;

use crate::asana::{
    AsanaClient, AsanaError, CommentDraft, Connections, Marker, TokenError, TokenManager,
    find_marked, post_comment,
};
use crate::context::{Context, ContextError, ContextSource, SourceRef};
use crate::domain::{AttachRequest, Target};
use crate::render::{CommentBody, Format, Layout, RenderCache, TooLarge, xml_safe};
use crate::service::posted::PostedLog;
use crate::store::{PostedStory, Store};
use crate::util::retry::RetryPolicy;
use crate::webhooks::HookStore;

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

/// A failed attach, and whether it got as far as sending a write to Asana (then something
/// may have been written, and a retry must look before it writes).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failed {
    /// What went wrong.
    #[source]
    pub error: AttachError,
    /// A write was sent to Asana before it failed.
    pub wrote: bool,
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
    /// Whose connection wrote it.
    pub posted_as: PostedAs,
    /// The comments or the field.
    #[serde(flatten)]
    pub written: Written,
}

/// The connection an attach wrote as.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PostedAs {
    /// The Asana user's gid.
    pub user_gid: String,
    /// Their name.
    pub name: String,
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
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
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
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreviewPart {
    /// The field it would be sent as: `html_text` or `text`.
    pub field: &'static str,
    /// What would be sent.
    pub content: String,
    /// Its length as Asana counts it.
    pub chars: usize,
}

/// Comment layout settings.
#[derive(Debug, Clone, Copy)]
pub struct CommentSettings {
    /// `COMMENT_HEADER`.
    pub header: bool,
    /// `COMMENT_HEADER_HOSTS`: the header may name the context server's host.
    pub header_hosts: bool,
    /// `ASANA_COMMENT_MAX_CHARS`.
    pub max_chars: usize,
    /// `MAX_COMMENT_PARTS`.
    pub max_parts: usize,
}

/// Everything an attach needs, built once at start.
#[derive(Debug)]
pub struct Attacher {
    /// Every person's connection.
    pub connections: Arc<Connections>,
    /// Asana's REST API.
    pub asana: Arc<AsanaClient>,
    /// Where contexts come from; `None` until `MCP_SERVER_URL` or `MCP_SERVER_COMMAND` is set.
    pub context: Option<Arc<ContextSource>>,
    /// The retry policy of outbound calls.
    pub retry: RetryPolicy,
    /// How comments are laid out.
    pub comments: CommentSettings,
    /// The last few contexts rendered, reused when the same text is attached again.
    pub rendered: RenderCache,
    /// Settings missing for attaching, beside the context server (the OAuth ones).
    pub missing: Vec<&'static str>,
    /// Registered webhooks: while any exists, posted story gids are remembered.
    pub hooks: Arc<HookStore>,
    /// Where posted story gids are remembered, so webhook rules never act on them.
    pub store: Store,
    /// Where every posted comment is recorded, off the attach path.
    pub posted: PostedLog,
}

impl Attacher {
    /// Fetches the context and writes it to the task as `acting`'s connection, every comment
    /// ending with `marker`.
    /// With `resume`, an earlier try with the same marker may have written some of it: the
    /// task is searched for each part's marker first and only the missing parts are posted.
    /// A token Asana refuses is refreshed once and the write retried once.
    #[tracing::instrument(level = "debug", skip_all, fields(task_gid = %request.task_gid, context_name = %request.context_name))]
    pub async fn attach(
        &self,
        acting: &TokenManager,
        request: &AttachRequest,
        marker: &Marker,
        resume: bool,
    ) -> Result<Attached, Failed> {
        let mut wrote = false;
        let result = self
            .attach_inner(acting, request, marker, resume, &mut wrote)
            .await;
        result.map_err(|error| Failed { error, wrote })
    }

    async fn attach_inner(
        &self,
        acting: &TokenManager,
        request: &AttachRequest,
        marker: &Marker,
        resume: bool,
        wrote: &mut bool,
    ) -> Result<Attached, AttachError> {
        let source = self.source()?;
        let mut token = acting.access_token().await?;
        let posted_as = PostedAs {
            user_gid: acting.user_gid().to_owned(),
            name: acting.user().map(|user| user.name).unwrap_or_default(),
        };
        let context = source
            .fetch(&request.context_name, &request.arguments)
            .await?;
        let task = &request.task_gid;
        let written = match &request.target {
            Target::Comment { pin } => {
                let (_, bodies) = self.comments(request, &context, marker.clone())?;
                let lines: Vec<String> = (1..=bodies.len())
                    .map(|part| marker.line(part, bodies.len()))
                    .collect();
                let mut found = if resume {
                    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                    let lines = &lines;
                    self.authorized(acting, &mut token, |token| async move {
                        find_marked(&self.asana, &token, task, lines).await
                    })
                    .await?
                } else {
                    vec![None; bodies.len()]
                };
                let mut story_gids = Vec::with_capacity(bodies.len());
                for (i, body) in bodies.iter().enumerate() {
                    if let Some(story) = found[i].take() {
                        tracing::info!(story_gid = %story.gid, part = i + 1, "already posted by an earlier try");
                        story_gids.push(story.gid);
                        continue;
                    }
                    let draft = CommentDraft {
                        task,
                        body,
                        pin: *pin && i == 0,
                        marker_line: &lines[i],
                    };
                    *wrote = true;
                    let story = self
                        .authorized(acting, &mut token, |token| async move {
                            post_comment(&self.asana, &self.retry, &token, draft).await
                        })
                        .await?;
                    crate::telemetry::metrics::story_posted();
                    self.remember(&story.gid).await;
                    self.posted.record(PostedStory {
                        connection: posted_as.user_gid.clone(),
                        story_gid: story.gid.clone(),
                        task_gid: task.as_str().to_owned(),
                        context_name: request.context_name.as_str().to_owned(),
                        marker: lines[i].clone(),
                        posted_at: crate::store::now_ms(),
                    });
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
                *wrote = true;
                self.authorized(acting, &mut token, |token| async move {
                    self.retry
                        .run(
                            || self.asana.set_text_field(&token, task, field, text),
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
        Ok(Attached {
            task_gid: task.to_string(),
            context_name: request.context_name.to_string(),
            source: context.source,
            posted_as,
            written,
        })
    }

    /// What [`Attacher::attach`] would write, without calling Asana (with a fresh marker).
    pub async fn preview(&self, request: &AttachRequest) -> Result<Preview, AttachError> {
        let context = self
            .source()?
            .fetch(&request.context_name, &request.arguments)
            .await?;
        let (format, parts, custom_field_text) = match &request.target {
            Target::Comment { .. } => {
                let (format, bodies) = self.comments(request, &context, Marker::random())?;
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
            Target::CustomField(_) => {
                (Format::Plain, Vec::new(), Some(field_text(&context.text).0))
            }
        };
        Ok(Preview {
            source: context.source,
            format,
            parts,
            custom_field_text,
        })
    }

    /// Whether attaching is configured at all (checked before anything else is looked at).
    pub fn configured(&self) -> Result<(), AttachError> {
        self.source().map(|_| ())
    }

    fn source(&self) -> Result<&ContextSource, AttachError> {
        self.context.as_deref().ok_or_else(|| {
            let mut missing = vec!["MCP_SERVER_URL or MCP_SERVER_COMMAND"];
            missing.extend(&self.missing);
            AttachError::NotConfigured(missing)
        })
    }

    /// Remembered so webhook rules never act on the linker's own comments.
    async fn remember(&self, story_gid: &str) {
        if self.hooks.in_use()
            && let Err(error) = self.store.mark_seen(&format!("story:{story_gid}")).await
        {
            tracing::warn!(story_gid, error = %crate::util::cause_chain(&error), "cannot record the linker's own comment; a webhook rule may act on it");
        }
    }

    /// The comments for this context: format from the request or the MIME type, header and
    /// footer as configured, the marker on every part, split to Asana's limit.
    fn comments(
        &self,
        request: &AttachRequest,
        context: &Context,
        marker: Marker,
    ) -> Result<(Format, Vec<CommentBody>), TooLarge> {
        let format = request
            .format
            .unwrap_or_else(|| Format::for_mime_type(context.mime_type.as_deref()));
        let layout = Layout {
            max_chars: self.comments.max_chars,
            max_parts: self.comments.max_parts,
            header: self.comments.header.then(|| {
                format!(
                    "Context {} ({})",
                    request.context_name,
                    context.label(self.comments.header_hosts)
                )
            }),
            footer: request.footer,
            marker: Some(marker),
        };
        Ok((
            format,
            self.rendered.render(&context.text, format, &layout)?,
        ))
    }

    /// Runs an Asana call; if Asana refuses the token, refreshes once and runs it once more.
    pub(crate) async fn authorized<T, F, Fut>(
        &self,
        acting: &TokenManager,
        token: &mut SecretString,
        call: F,
    ) -> Result<T, AttachError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Result<T, AsanaError>>,
    {
        match call(token.clone()).await {
            Err(AsanaError::Unauthorized) => {
                tracing::info!("Asana refused the access token; refreshing once");
                *token = acting.refresh_after_rejection(token).await?;
                Ok(call(token.clone()).await?)
            }
            result => Ok(result?),
        }
    }
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

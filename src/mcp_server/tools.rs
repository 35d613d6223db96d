//! The four tools: what each takes, what it answers, and what its annotations promise.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use rmcp::handler::server::common::{schema_for_input, schema_for_output};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use rmcp::schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::asana::FoundTask;
use crate::context::Catalog;
use crate::domain::TargetBody;
use crate::render::Format;
use crate::service::attach::{Attached, Preview, Written};

/// `list_contexts` takes nothing.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct ListArgs {}

/// `preview_context`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct PreviewArgs {
    /// The context's name or URI, as `list_contexts` shows it.
    pub context: String,
    /// Arguments for a prompt context (values are strings).
    #[serde(default)]
    pub arguments: BTreeMap<String, String>,
    /// `markdown`, `plain` or `code`; by default from the context's MIME type.
    #[serde(default)]
    pub format: Option<Format>,
    /// `"comment"` (default) or `{"custom_field_gid": "…"}` for a text custom field.
    #[serde(default)]
    pub target: Option<TargetBody>,
}

/// `attach_context`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct AttachArgs {
    /// The task: its gid, or its URL in Asana (`https://app.asana.com/…`).
    pub task: String,
    /// The context's name or URI, as `list_contexts` shows it.
    pub context: String,
    /// Arguments for a prompt context (values are strings).
    #[serde(default)]
    pub arguments: BTreeMap<String, String>,
    /// `markdown`, `plain` or `code`; by default from the context's MIME type.
    #[serde(default)]
    pub format: Option<Format>,
    /// `"comment"` (default) or `{"custom_field_gid": "…"}` for a text custom field.
    #[serde(default)]
    pub target: Option<TargetBody>,
    /// Pin the (first) comment.
    #[serde(default)]
    pub pin: bool,
    /// Makes retries safe: a call repeated with the same key within 24 hours posts nothing
    /// and answers the first call's outcome (1–255 visible ASCII characters).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Whose Asana connection posts (a user gid or email); only the operator key may name
    /// one. A personal key always posts as its owner.
    #[serde(default, rename = "as")]
    pub acting_as: Option<String>,
}

/// `find_tasks`' arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct FindArgs {
    /// Words of the task's name.
    pub query: String,
    /// The workspace's gid; may be left out when the connection reaches one workspace.
    #[serde(default)]
    pub workspace: Option<String>,
    /// How many tasks at most (1–50, default 10).
    #[serde(default)]
    pub count: Option<u8>,
    /// Whose Asana connection searches (a user gid or email); only the operator key may
    /// name one.
    #[serde(default, rename = "as")]
    pub acting_as: Option<String>,
}

/// What `attach_context` wrote.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct AttachOutput {
    /// The task written to.
    pub task_gid: String,
    /// The context posted.
    pub context_name: String,
    /// Whose connection wrote it.
    pub posted_as: PostedAsOutput,
    /// The comments posted, in order (none for a custom field).
    #[serde(default)]
    pub story_gids: Vec<String>,
    /// Each comment's link in Asana, in the same order.
    #[serde(default)]
    pub links: Vec<String>,
    /// The custom field set, for a custom field target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_field_gid: Option<String>,
    /// Whether the field's text was cut to Asana's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// Whether this is the first outcome of an earlier call with the same `idempotency_key`
    /// (nothing new was posted).
    #[serde(default)]
    pub replayed: bool,
}

impl From<Attached> for AttachOutput {
    fn from(attached: Attached) -> Self {
        let (story_gids, custom_field_gid, truncated) = match attached.written {
            Written::Comments { story_gids, .. } => (story_gids, None, None),
            Written::CustomField {
                custom_field_gid,
                truncated,
            } => (Vec::new(), Some(custom_field_gid), Some(truncated)),
        };
        Self {
            task_gid: attached.task_gid,
            context_name: attached.context_name,
            posted_as: PostedAsOutput {
                user_gid: attached.posted_as.user_gid,
                name: attached.posted_as.name,
            },
            story_gids,
            links: Vec::new(),
            custom_field_gid,
            truncated,
            replayed: false,
        }
    }
}

/// The connection a comment was posted as.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PostedAsOutput {
    /// The Asana user's gid.
    pub user_gid: String,
    /// Their name.
    pub name: String,
}

/// What `find_tasks` found.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct FindOutput {
    /// Matching tasks, best first.
    pub tasks: Vec<FoundTask>,
}

/// The tools' names.
pub const LIST: &str = "list_contexts";
/// See [`LIST`].
pub const PREVIEW: &str = "preview_context";
/// See [`LIST`].
pub const ATTACH: &str = "attach_context";
/// See [`LIST`].
pub const FIND: &str = "find_tasks";

/// Every tool, built once.
pub static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(|| {
    vec![
        tool::<ListArgs, Catalog>(
            LIST,
            "Contexts you can attach",
            "Lists the contexts the linker's context server offers: resources (by name and URI) and prompts (with their arguments). Use a name from here as `context` in preview_context and attach_context.",
            read_only(),
        ),
        tool::<PreviewArgs, Preview>(
            PREVIEW,
            "Preview a context",
            "Shows what attach_context would post for a context (the comment parts as Asana rich text, or the custom field's text), without posting anything.",
            read_only(),
        ),
        tool::<AttachArgs, AttachOutput>(
            ATTACH,
            "Attach a context to an Asana task",
            "Posts a context into an Asana task as a comment (or several, when it is long), or writes it into a text custom field, as your connected Asana account. Returns the comments' gids and links. Give an idempotency_key to make a retry safe.",
            ToolAnnotations::new()
                .read_only(false)
                .destructive(false)
                // Without a key every call posts again; with one, a repeat posts nothing.
                .idempotent(false)
                .open_world(true),
        ),
        tool::<FindArgs, FindOutput>(
            FIND,
            "Find Asana tasks by name",
            "Searches the connected Asana account's tasks by words of their name in a workspace, to find the gid (or link) to attach to.",
            read_only(),
        ),
    ]
});

fn read_only() -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(true)
}

fn tool<In: JsonSchema + 'static, Out: JsonSchema + 'static>(
    name: &'static str,
    title: &str,
    description: &'static str,
    annotations: ToolAnnotations,
) -> Tool {
    Tool::new(name, description, input_schema::<In>())
        .with_title(title)
        .with_raw_output_schema(schema_for_output::<Out>())
        .with_annotations(titled(annotations, title))
}

fn titled(mut annotations: ToolAnnotations, title: &str) -> ToolAnnotations {
    annotations.title = Some(title.to_owned());
    annotations
}

/// The input schema of `In`; a type whose schema is not an object is a fault of ours,
/// caught by the tests below.
fn input_schema<In: JsonSchema + 'static>() -> Arc<JsonObject> {
    schema_for_input::<In>().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_input_schema_and_an_output_schema() {
        for tool in TOOLS.iter() {
            assert_eq!(
                tool.input_schema.get("type"),
                Some(&serde_json::json!("object")),
                "{}",
                tool.name
            );
            assert!(tool.output_schema.is_some(), "{}", tool.name);
        }
    }

    #[test]
    fn attach_requires_a_task_and_a_context_and_refuses_unknown_arguments() {
        let attach = TOOLS.iter().find(|t| t.name == ATTACH).expect("attach");
        assert_eq!(
            attach.input_schema.get("required"),
            Some(&serde_json::json!(["task", "context"]))
        );
        assert_eq!(
            attach.input_schema.get("additionalProperties"),
            Some(&serde_json::json!(false))
        );
    }
}

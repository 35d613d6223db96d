//! The body of `POST /asana/attach-context`.

use serde::Deserialize;

use super::{ContextName, CustomFieldGid, InvalidInput, TaskGid};
use crate::context::PromptArguments;
use crate::render::Format;

/// Most prompt arguments one request may carry.
const MAX_ARGUMENTS: usize = 64;

/// The JSON body as sent by the client, before validation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachRequestBody {
    /// Gid of the Asana task to comment on.
    #[schema(pattern = r"^[0-9]{1,32}$")]
    pub task_gid: String,
    /// Name or URI of the context to fetch: 1–256 characters, no control characters, not
    /// `.` or `..`. For a REST context server, also no `/` or `\\`.
    #[schema(
        pattern = r"^([^.\u0000-\u001F\u007F-\u009F]|[^.\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]|\.[^.\u0000-\u001F\u007F-\u009F]|[^\u0000-\u001F\u007F-\u009F]{3,256})$"
    )]
    pub context_name: String,
    /// Arguments for an MCP prompt (at most 64); values must be strings, as MCP requires.
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub arguments: PromptArguments,
    /// `markdown`, `plain` or `code`; by default from the context's MIME type.
    #[serde(default)]
    pub format: Option<Format>,
    /// `"comment"` (default) or `{"custom_field_gid": "…"}`.
    #[serde(default)]
    pub target: Option<TargetBody>,
    /// Pin the (first) comment; refused (400) with a custom-field target.
    #[serde(default)]
    pub pin: bool,
    /// End the comment with a line naming the linker.
    #[serde(default)]
    pub footer: bool,
    /// Whose connection posts: an Asana user gid or email. Only the operator key may name
    /// one; without it, the operator acts as the default connection and a personal key as
    /// its owner.
    #[serde(default, rename = "as")]
    pub acting_as: Option<String>,
}

/// Where the context goes, as sent.
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TargetBody {
    /// `"comment"`.
    Named(TargetName),
    /// `{"custom_field_gid": "…"}`.
    CustomField(CustomFieldBody),
}

/// The one target named by a string.
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetName {
    /// Comments on the task.
    Comment,
}

/// `{"custom_field_gid": "…"}`, with no other field.
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldBody {
    /// The text custom field to write.
    #[schema(pattern = r"^[0-9]{1,32}$")]
    pub custom_field_gid: String,
}

/// Where the context goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One or more comments, the first pinned if asked.
    Comment {
        /// Pin the first comment.
        pin: bool,
    },
    /// A text custom field of the task.
    CustomField(CustomFieldGid),
}

/// A validated attach request.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    /// The task to comment on.
    pub task_gid: TaskGid,
    /// The context to post.
    pub context_name: ContextName,
    /// Arguments for an MCP prompt.
    pub arguments: PromptArguments,
    /// The format asked for, if any.
    pub format: Option<Format>,
    /// Where the context goes.
    pub target: Target,
    /// Whether to add the footer line.
    pub footer: bool,
}

impl AttachRequest {
    /// The request in a canonical form (arguments sorted), for telling repeats apart.
    pub fn canonical(&self) -> serde_json::Value {
        serde_json::json!({
            "task_gid": self.task_gid.as_str(),
            "context_name": self.context_name.as_str(),
            "arguments": self.arguments,
            "format": self.format.map(|f| format!("{f:?}")),
            "target": format!("{:?}", self.target),
            "footer": self.footer,
        })
    }
}

impl TryFrom<AttachRequestBody> for AttachRequest {
    type Error = InvalidInput;

    fn try_from(body: AttachRequestBody) -> Result<Self, Self::Error> {
        Ok(Self {
            task_gid: TaskGid::parse(&body.task_gid)?,
            context_name: ContextName::parse(&body.context_name)?,
            arguments: if body.arguments.len() > MAX_ARGUMENTS {
                return Err(InvalidInput(format!(
                    "at most {MAX_ARGUMENTS} arguments are accepted"
                )));
            } else {
                body.arguments
            },
            format: body.format,
            target: match (body.target, body.pin) {
                (None, pin) => Target::Comment { pin },
                (Some(TargetBody::Named(TargetName::Comment)), pin) => Target::Comment { pin },
                (Some(TargetBody::CustomField(_)), true) => {
                    return Err(InvalidInput("pin applies to comments only".to_owned()));
                }
                (Some(TargetBody::CustomField(CustomFieldBody { custom_field_gid })), false) => {
                    Target::CustomField(CustomFieldGid::parse(&custom_field_gid)?)
                }
            },
            footer: body.footer,
        })
    }
}

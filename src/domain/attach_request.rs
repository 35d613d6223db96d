//! The body of `POST /asana/attach-context`.

use serde::Deserialize;

use super::{ContextName, InvalidInput, TaskGid};
use crate::context::PromptArguments;

/// Most prompt arguments one request may carry.
const MAX_ARGUMENTS: usize = 64;

/// The JSON body as sent by the client, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequestBody {
    /// Gid of the Asana task to comment on.
    pub task_gid: String,
    /// Name or URI of the context to fetch.
    pub context_name: String,
    /// Arguments for an MCP prompt; values must be strings, as MCP requires.
    #[serde(default)]
    pub arguments: PromptArguments,
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
}

impl AttachRequest {
    /// The request in a canonical form (arguments sorted), for telling repeats apart.
    pub fn canonical(&self) -> serde_json::Value {
        serde_json::json!({
            "task_gid": self.task_gid.as_str(),
            "context_name": self.context_name.as_str(),
            "arguments": self.arguments,
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
        })
    }
}

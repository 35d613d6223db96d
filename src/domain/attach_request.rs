//! The body of `POST /asana/attach-context`.

use serde::Deserialize;

use super::{ContextName, InvalidInput, TaskGid};

/// The JSON body as sent by the client, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequestBody {
    /// Gid of the Asana task to comment on.
    pub task_gid: String,
    /// Name of the context to fetch.
    pub context_name: String,
}

/// A validated attach request.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    /// The task to comment on.
    pub task_gid: TaskGid,
    /// The context to post.
    pub context_name: ContextName,
}

impl TryFrom<AttachRequestBody> for AttachRequest {
    type Error = InvalidInput;

    fn try_from(body: AttachRequestBody) -> Result<Self, Self::Error> {
        Ok(Self {
            task_gid: TaskGid::parse(&body.task_gid)?,
            context_name: ContextName::parse(&body.context_name)?,
        })
    }
}

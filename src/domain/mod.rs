//! Validated request types: once parsed at the edge, a value is always valid inside.

mod attach_request;
mod context_name;
mod task_gid;
mod workspaces;

pub use attach_request::Target;
pub use attach_request::{AttachRequest, AttachRequestBody, TargetBody};
pub use context_name::ContextName;
pub use task_gid::{CustomFieldGid, TaskGid};
pub use workspaces::{AllowedWorkspaces, FirstConnection, Workspace};

/// Why a request field was refused; the message is shown to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidInput(pub String);

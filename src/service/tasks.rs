//! Finding tasks by name, for callers (agents) that know a task's title but not its gid.

use crate::asana::{FoundTask, TokenManager};
use crate::domain::Workspace;
use crate::service::attach::{AttachError, Attacher};

/// Most tasks one search returns.
pub const MAX_FOUND: u8 = 50;

/// Why a search could not start.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// The connection reaches several workspaces and the caller named none.
    #[error("name a workspace: the connection reaches {}", list(.0))]
    WhichWorkspace(Vec<Workspace>),
    /// Nothing is known of the connection's workspaces and the caller named none.
    #[error(
        "name a workspace gid: the connection's workspaces are not known yet (they are read at consent)"
    )]
    NoWorkspaceKnown,
    /// The connection's workspaces could not be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The search failed.
    #[error(transparent)]
    Failed(#[from] AttachError),
}

fn list(workspaces: &[Workspace]) -> String {
    workspaces
        .iter()
        .map(|w| format!("{} ({})", w.gid, w.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Attacher {
    /// Tasks whose names match `query` in `workspace`, or in the acting connection's only
    /// workspace when none is named.
    pub async fn find_tasks(
        &self,
        acting: &TokenManager,
        workspace: Option<&str>,
        query: &str,
        count: u8,
    ) -> Result<Vec<FoundTask>, FindError> {
        let workspace = match workspace {
            Some(named) => named.to_owned(),
            None => {
                let mut known = self.store.workspaces(acting.user_gid()).await?;
                match known.len() {
                    0 => return Err(FindError::NoWorkspaceKnown),
                    1 => known.remove(0).gid,
                    _ => return Err(FindError::WhichWorkspace(known)),
                }
            }
        };
        let mut token = acting.access_token().await.map_err(AttachError::from)?;
        let count = count.clamp(1, MAX_FOUND);
        Ok(self
            .authorized(acting, &mut token, |token| {
                let workspace = workspace.clone();
                async move {
                    self.asana
                        .find_tasks(&token, &workspace, query, count)
                        .await
                }
            })
            .await?)
    }
}

//! Which Asana workspaces may connect (`ALLOWED_WORKSPACES`): whoever connects can read every
//! context the context server offers, so a public linker is not open to every Asana user.

use serde::{Deserialize, Serialize};

/// A workspace an Asana user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Its gid.
    pub gid: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
}

/// Whose consent is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedWorkspaces {
    /// Unset: people of the workspaces of the first connection made.
    FirstConnection,
    /// `*`: anyone with an Asana account.
    Any,
    /// These workspace gids.
    Only(Vec<String>),
}

impl AllowedWorkspaces {
    /// Parses the setting: unset or empty, `*`, or comma-separated workspace gids.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let value = value.map(str::trim).unwrap_or_default();
        if value.is_empty() {
            return Ok(Self::FirstConnection);
        }
        if value == "*" {
            return Ok(Self::Any);
        }
        let gids: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|gid| !gid.is_empty())
            .map(str::to_owned)
            .collect();
        match gids
            .iter()
            .find(|gid| !gid.bytes().all(|b| b.is_ascii_digit()))
        {
            Some(bad) => Err(format!(
                "expected * or comma-separated workspace gids (digits); {bad:?} is not one"
            )),
            None => Ok(Self::Only(gids)),
        }
    }

    /// Whether someone in `theirs` may connect, given what is known of the first connection.
    pub fn admits(&self, theirs: &[Workspace], first: &FirstConnection) -> bool {
        let allowed: Vec<&str> = match (self, first) {
            (Self::Any, _) => return true,
            (Self::Only(gids), _) => gids.iter().map(String::as_str).collect(),
            (Self::FirstConnection, FirstConnection::Known(first)) => {
                first.iter().map(|w| w.gid.as_str()).collect()
            }
            // Nobody connected yet: the first consent sets the workspaces.
            (Self::FirstConnection, FirstConnection::None) => return true,
            // Made before workspaces were recorded: only its own user (consenting again)
            // gets in, until the operator sets ALLOWED_WORKSPACES.
            (Self::FirstConnection, FirstConnection::Unknown) => return false,
        };
        theirs.iter().any(|w| allowed.contains(&w.gid.as_str()))
    }
}

/// What is known of the first connection made, for [`AllowedWorkspaces::FirstConnection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstConnection {
    /// There is none yet.
    None,
    /// It predates recording workspaces.
    Unknown,
    /// Its workspaces.
    Known(Vec<Workspace>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(gid: &str) -> Workspace {
        Workspace {
            gid: gid.to_owned(),
            name: String::new(),
        }
    }

    #[test]
    fn the_setting_is_unset_any_or_a_list_of_gids() {
        assert_eq!(
            AllowedWorkspaces::parse(None),
            Ok(AllowedWorkspaces::FirstConnection)
        );
        assert_eq!(
            AllowedWorkspaces::parse(Some(" ")),
            Ok(AllowedWorkspaces::FirstConnection)
        );
        assert_eq!(
            AllowedWorkspaces::parse(Some("*")),
            Ok(AllowedWorkspaces::Any)
        );
        assert_eq!(
            AllowedWorkspaces::parse(Some("1, 22,")),
            Ok(AllowedWorkspaces::Only(vec!["1".into(), "22".into()]))
        );
        assert!(AllowedWorkspaces::parse(Some("1,acme")).is_err());
    }

    #[test]
    fn a_consent_is_admitted_when_a_workspace_is_shared() {
        let first = FirstConnection::Known(vec![ws("1")]);
        let policy = AllowedWorkspaces::FirstConnection;
        assert!(policy.admits(&[ws("2"), ws("1")], &first));
        assert!(!policy.admits(&[ws("2")], &first));
        assert!(
            policy.admits(&[ws("2")], &FirstConnection::None),
            "the first sets them"
        );
        assert!(!policy.admits(&[ws("1")], &FirstConnection::Unknown));
        assert!(!AllowedWorkspaces::Only(vec!["3".into()]).admits(&[ws("1")], &first));
        assert!(AllowedWorkspaces::Any.admits(&[], &FirstConnection::Unknown));
    }
}

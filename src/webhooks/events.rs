//! The events Asana delivers (compact: gids and types, no story text).

use serde::{Deserialize, Serialize};

/// A delivery: zero events is a heartbeat.
#[derive(Debug, Deserialize)]
pub struct EventBatch {
    /// The events, possibly none.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One event (kept as JSON in the store until handled).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Event {
    /// `added`, `changed`, `removed`, `deleted`, `undeleted`.
    pub action: String,
    /// What changed.
    pub resource: Compact,
    /// Where it happened (the task of a story, the project a task was added to).
    #[serde(default)]
    pub parent: Option<Compact>,
    /// When.
    #[serde(default)]
    pub created_at: Option<String>,
    /// For `changed`: which field and how.
    #[serde(default)]
    pub change: Option<Change>,
}

/// A resource reference.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Compact {
    /// Its gid.
    pub gid: String,
    /// `task`, `story`, `project`, `tag`, …
    #[serde(default)]
    pub resource_type: Option<String>,
    /// E.g. `comment_added` for comment stories (not guaranteed).
    #[serde(default)]
    pub resource_subtype: Option<String>,
}

/// The change a `changed` event describes.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Change {
    /// The field, e.g. `tags`.
    #[serde(default)]
    pub field: Option<String>,
    /// `added`, `removed`, `changed`.
    #[serde(default)]
    pub action: Option<String>,
    /// What was added.
    #[serde(default)]
    pub added_value: Option<Compact>,
}

impl Event {
    /// A stable identity for deduplication: a story's gid for story events, else action,
    /// resource, parent, change and time together.
    pub fn identity(&self) -> String {
        if self.is_type(&self.resource, "story") && self.action == "added" {
            return format!("story-added:{}", self.resource.gid);
        }
        let parent = self.parent.as_ref().map_or("-", |p| p.gid.as_str());
        let added = self
            .change
            .as_ref()
            .and_then(|c| c.added_value.as_ref())
            .map_or("-", |v| v.gid.as_str());
        format!(
            "{}:{}:{parent}:{added}:{}",
            self.action,
            self.resource.gid,
            self.created_at.as_deref().unwrap_or("-")
        )
    }

    fn is_type(&self, compact: &Compact, kind: &str) -> bool {
        compact.resource_type.as_deref() == Some(kind)
    }

    /// The story gid, if this is a new story on a task.
    pub fn new_story(&self) -> Option<&str> {
        (self.action == "added" && self.is_type(&self.resource, "story"))
            .then_some(self.resource.gid.as_str())
    }

    /// `(task, project)` if a task was added to a project.
    pub fn task_added_to_project(&self) -> Option<(&str, &str)> {
        let parent = self.parent.as_ref()?;
        (self.action == "added"
            && self.is_type(&self.resource, "task")
            && self.is_type(parent, "project"))
        .then_some((self.resource.gid.as_str(), parent.gid.as_str()))
    }

    /// `(task, tag)` if a tag was added to a task: as a `changed` event on the task's
    /// `tags` field, or as an `added` event with the tag as parent.
    pub fn tag_added(&self) -> Option<(&str, &str)> {
        if !self.is_type(&self.resource, "task") {
            return None;
        }
        if let Some(change) = &self.change
            && self.action == "changed"
            && change.field.as_deref() == Some("tags")
            && change.action.as_deref() == Some("added")
            && let Some(tag) = &change.added_value
        {
            return Some((self.resource.gid.as_str(), tag.gid.as_str()));
        }
        let parent = self.parent.as_ref()?;
        (self.action == "added" && self.is_type(parent, "tag"))
            .then_some((self.resource.gid.as_str(), parent.gid.as_str()))
    }
}

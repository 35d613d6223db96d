//! What events do: the built-in `/context NAME [format=…]` comment command, and fixed rules
//! from a TOML file (`WEBHOOK_RULES_PATH`) for tags and projects.

use std::path::Path;

use serde::Deserialize;

use crate::render::Format;

/// A fixed rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// When this tag is added to a task, attach `context` to it.
    TagAdded {
        /// The tag's gid.
        tag_gid: String,
        /// The context to attach.
        context: String,
        /// Optional format.
        #[serde(default)]
        format: Option<Format>,
    },
    /// When a task is added to this project, attach `context` to it.
    AddedToProject {
        /// The project's gid.
        project_gid: String,
        /// The context to attach.
        context: String,
        /// Optional format.
        #[serde(default)]
        format: Option<Format>,
    },
}

/// The rules file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// `[[rule]]` tables.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

/// The rules file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// It cannot be read.
    #[error("cannot read WEBHOOK_RULES_PATH {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid.
    #[error("invalid WEBHOOK_RULES_PATH {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: toml::de::Error,
    },
}

impl Rules {
    /// Reads and validates the file.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| RulesError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// The contexts (and formats) to attach when `tag` is added to a task.
    pub fn for_tag(&self, tag: &str) -> Vec<(String, Option<Format>)> {
        self.rules
            .iter()
            .filter_map(|rule| match rule {
                Rule::TagAdded {
                    tag_gid,
                    context,
                    format,
                } if tag_gid == tag => Some((context.clone(), *format)),
                _ => None,
            })
            .collect()
    }

    /// The contexts (and formats) to attach when a task is added to `project`.
    pub fn for_project(&self, project: &str) -> Vec<(String, Option<Format>)> {
        self.rules
            .iter()
            .filter_map(|rule| match rule {
                Rule::AddedToProject {
                    project_gid,
                    context,
                    format,
                } if project_gid == project => Some((context.clone(), *format)),
                _ => None,
            })
            .collect()
    }
}

/// Parses a `/context NAME` or `/context NAME format=code` comment.
pub fn context_command(text: &str) -> Option<(String, Option<Format>)> {
    let rest = text.trim().strip_prefix("/context")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let mut words = rest.split_whitespace();
    let name = words.next()?.to_owned();
    let format = match (words.next(), words.next()) {
        (None, _) => None,
        (Some(option), None) => match option.strip_prefix("format=")? {
            "markdown" => Some(Format::Markdown),
            "plain" => Some(Format::Plain),
            "code" => Some(Format::Code),
            _ => return None,
        },
        _ => return None,
    };
    Some((name, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_commands_are_recognised_exactly() {
        assert_eq!(
            context_command("/context design_notes"),
            Some(("design_notes".into(), None))
        );
        assert_eq!(
            context_command("  /context design_notes format=code \n"),
            Some(("design_notes".into(), Some(Format::Code)))
        );
        for not_a_command in [
            "context design_notes",
            "/contextdesign_notes",
            "/context",
            "/context a b",
            "/context a format=html",
            "please /context a",
        ] {
            assert_eq!(context_command(not_a_command), None, "{not_a_command:?}");
        }
    }

    #[test]
    fn rules_parse_from_toml_and_match_by_gid() {
        let rules: Rules = toml::from_str(
            r#"
            [[rule]]
            on = "tag_added"
            tag_gid = "111"
            context = "design_notes"

            [[rule]]
            on = "added_to_project"
            project_gid = "222"
            context = "onboarding"
            format = "plain"
            "#,
        )
        .expect("valid rules");

        assert_eq!(rules.for_tag("111"), [("design_notes".to_owned(), None)]);
        assert_eq!(
            rules.for_project("222"),
            [("onboarding".to_owned(), Some(Format::Plain))]
        );
        assert!(rules.for_tag("222").is_empty());
        assert!(toml::from_str::<Rules>("[[rule]]\non = \"typo\"\ncontext = \"x\"").is_err());
    }
}

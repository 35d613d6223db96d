//! Asana gids: of a task, and of a custom field.

use std::fmt;

use super::InvalidInput;

/// An Asana task gid: 1–32 ASCII digits, safe to put in a URL path as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskGid(String);

impl TaskGid {
    /// Accepts 1–32 ASCII digits and nothing else.
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        if !is_gid(value) {
            return Err(InvalidInput(
                "task_gid must be 1 to 32 ASCII digits".to_owned(),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// Accepts a gid, or the URL of a task in Asana's web app, of either form:
    /// `https://app.asana.com/0/PROJECT/TASK[/f]` or
    /// `https://app.asana.com/1/WORKSPACE/…/task/TASK[…]`. Only the task gid is taken from it.
    pub fn from_reference(value: &str) -> Result<Self, InvalidInput> {
        let value = value.trim();
        if !value.contains('/') {
            return Self::parse(value);
        }
        let refused = || {
            InvalidInput(
                "task must be a task gid or a task URL from app.asana.com (https://app.asana.com/0/PROJECT/TASK or https://app.asana.com/1/WORKSPACE/project/PROJECT/task/TASK)".to_owned(),
            )
        };
        let url = url::Url::parse(value).map_err(|_| refused())?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str() != Some("app.asana.com") {
            return Err(refused());
        }
        let segments: Vec<&str> = url.path_segments().ok_or_else(refused)?.collect();
        let task = match segments.as_slice() {
            ["0", _project, task, ..] => *task,
            ["1", _workspace, rest @ ..] => rest
                .windows(2)
                .find(|pair| pair[0] == "task")
                .map(|pair| pair[1])
                .ok_or_else(refused)?,
            _ => return Err(refused()),
        };
        Self::parse(task).map_err(|_| refused())
    }

    /// The gid as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_gid(value: &str) -> bool {
    !value.is_empty() && value.len() <= 32 && value.bytes().all(|b| b.is_ascii_digit())
}

/// An Asana custom field gid: 1–32 ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomFieldGid(String);

impl CustomFieldGid {
    /// Accepts 1–32 ASCII digits and nothing else.
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        if !is_gid(value) {
            return Err(InvalidInput(
                "custom_field_gid must be 1 to 32 ASCII digits".to_owned(),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The gid as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskGid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_digits_up_to_32() {
        for valid in ["1", "1234567890", &"9".repeat(32)] {
            assert!(TaskGid::parse(valid).is_ok(), "{valid} should be accepted");
        }
    }

    #[test]
    fn a_task_url_of_either_form_gives_its_task_gid() {
        let cases = [
            ("1234567890", "1234567890"),
            ("https://app.asana.com/0/111/1234567890", "1234567890"),
            ("https://app.asana.com/0/111/1234567890/f", "1234567890"),
            (
                "https://app.asana.com/1/15793206719/project/111/task/1234567890",
                "1234567890",
            ),
            (
                "https://app.asana.com/1/15793206719/task/1234567890?focus=true",
                "1234567890",
            ),
        ];
        for (reference, gid) in cases {
            let parsed = TaskGid::from_reference(reference).map(|t| t.0);
            assert_eq!(parsed.as_deref(), Ok(gid), "{reference}");
        }
    }

    #[test]
    fn urls_of_other_hosts_or_shapes_are_refused() {
        for reference in [
            "https://evil.example/0/111/1234567890",
            "https://app.asana.com/1/157/project/111",
            "https://app.asana.com/0/111",
            "https://app.asana.com/0/111/12ab",
            "ftp://app.asana.com/0/111/1234567890",
        ] {
            assert!(TaskGid::from_reference(reference).is_err(), "{reference}");
        }
    }

    #[test]
    fn refuses_anything_but_1_to_32_digits() {
        let cases = [
            ("", "empty"),
            (&"1".repeat(33) as &str, "33 digits"),
            ("12a4", "a letter"),
            ("-12", "a sign"),
            (" 12", "a space"),
            ("12/../3", "a path"),
            ("١٢٣", "non-ASCII digits"),
        ];
        for (input, why) in cases {
            assert!(TaskGid::parse(input).is_err(), "accepted {why}: {input:?}");
        }
    }
}

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

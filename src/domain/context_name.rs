//! The name of a context on the context server.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::InvalidInput;

/// Everything but RFC 3986's unreserved characters is encoded, so a name is always exactly
/// one path segment: `/`, `?`, `#`, `%` and spaces never reach the server as themselves.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A context name: 1–256 characters, no control characters, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContextName(String);

impl ContextName {
    /// Accepts 1–256 characters without control characters; `.` and `..` are refused
    /// because URL parsers resolve them as dot-segments, whatever their encoding.
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let chars = value.chars().count();
        if chars == 0 || chars > 256 {
            return Err(InvalidInput(
                "context_name must be 1 to 256 characters".to_owned(),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(InvalidInput(
                "context_name must not contain control characters".to_owned(),
            ));
        }
        if value == "." || value == ".." {
            return Err(InvalidInput(
                "context_name must not be \".\" or \"..\"".to_owned(),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name percent-encoded as a single URL path segment.
    pub fn as_path_segment(&self) -> String {
        utf8_percent_encode(&self.0, SEGMENT).to_string()
    }
}

impl fmt::Display for ContextName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_long_control_and_dot_segments() {
        let cases = [
            ("", "empty"),
            (&"x".repeat(257) as &str, "257 characters"),
            ("design\nnotes", "a newline"),
            ("design\u{0}notes", "a NUL"),
            ("design\u{7f}", "DEL"),
            ("\u{85}", "a C1 control"),
            (".", "a dot segment"),
            ("..", "a dot-dot segment"),
        ];
        for (input, why) in cases {
            assert!(
                ContextName::parse(input).is_err(),
                "accepted {why}: {input:?}"
            );
        }
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert!(ContextName::parse(&"é".repeat(256)).is_ok());
    }

    #[test]
    fn encodes_as_exactly_one_path_segment() {
        let cases = [
            ("design_notes", "design_notes"),
            ("../x", "..%2Fx"),
            ("a/b", "a%2Fb"),
            ("?", "%3F"),
            ("#", "%23"),
            ("100%", "100%25"),
            ("a b", "a%20b"),
            ("naïve", "na%C3%AFve"),
        ];
        for (input, expected) in cases {
            let name = ContextName::parse(input).expect("valid name");
            assert_eq!(name.as_path_segment(), expected, "for {input:?}");
        }
    }
}

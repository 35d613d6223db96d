//! The attach marker: a short reference at the end of every comment an attach posts, so the
//! linker can later tell its own comment from any other with the same text (reconciling after
//! an ambiguous failure, or resuming a retry whose first try had an unknown outcome).

/// Hex digits in a marker: 64 bits, so two attaches never share one by chance.
const ID_LEN: usize = 16;

/// Identifies one attach: every try of it (and every retry with the same `Idempotency-Key`)
/// carries the same marker; two different attaches never do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker(String);

impl Marker {
    /// The marker of the attach keyed `key` (an `Idempotency-Key` or a webhook event): a hash,
    /// so the key itself never reaches Asana.
    pub fn for_key(key: &str) -> Self {
        let mut hex = crate::util::digest::sha256_hex(key);
        hex.truncate(ID_LEN);
        Self(hex)
    }

    /// A fresh marker for an attach without a key.
    pub fn random() -> Self {
        Self(crate::util::random::quick_id()[..ID_LEN].to_owned())
    }

    /// The last line of part `part` (from 1) of `parts`: `ref 0123456789abcdef`, with `.2`
    /// for the second of several parts.
    pub fn line(&self, part: usize, parts: usize) -> String {
        let mut line = String::with_capacity(self.width(parts));
        self.push_line(&mut line, part, parts);
        line
    }

    /// Appends [`Marker::line`] to `out`, without a formatting pass: it ends every comment.
    pub fn push_line(&self, out: &mut String, part: usize, parts: usize) {
        out.push_str("ref ");
        out.push_str(&self.0);
        if parts > 1 {
            // Several parts are rare; only they pay for formatting a number.
            out.push('.');
            out.push_str(&part.to_string());
        }
    }

    /// Characters of the longest line among `parts` parts.
    pub fn width(&self, parts: usize) -> usize {
        "ref ".len()
            + self.0.len()
            + if parts > 1 {
                1 + crate::util::decimal_digits(parts)
            } else {
                0
            }
    }

    /// Whether `visible` (a comment's text as Asana returns it) ends with `line`. Whitespace
    /// is ignored: Asana may re-flow what it stores.
    pub fn ends(visible: &str, line: &str) -> bool {
        let squeeze =
            |text: &str| -> String { text.chars().filter(|c| !c.is_whitespace()).collect() };
        squeeze(visible).ends_with(&squeeze(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_gives_the_same_marker_and_never_shows_the_key() {
        let a = Marker::for_key("order-42");
        assert_eq!(a, Marker::for_key("order-42"));
        assert_ne!(a, Marker::for_key("order-43"));
        assert!(!a.line(1, 1).contains("order"));
        assert_ne!(Marker::random(), Marker::random());
    }

    #[test]
    fn a_part_is_recognised_by_its_own_line_only() {
        let marker = Marker::for_key("k");
        let tenth = format!("text\n\n{}", marker.line(10, 12));
        assert!(Marker::ends(&tenth, &marker.line(10, 12)));
        assert!(!Marker::ends(&tenth, &marker.line(1, 12)));
        assert!(!Marker::ends(
            &tenth,
            &Marker::for_key("other").line(10, 12)
        ));
        assert!(Marker::ends("a\n ref  abc", "ref abc"));
    }
}

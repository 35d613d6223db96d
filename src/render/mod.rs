//! Contexts as Asana comments: Markdown rendered to Asana's `html_text`, plain text, or one
//! code block; a header line; long contexts split at block boundaries into numbered parts.

mod cache;
mod markdown;
mod split;

use serde::{Deserialize, Serialize};

use crate::asana::Marker;

pub use cache::RenderCache;

/// How the context's text is turned into a comment.
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Markdown rendered as Asana rich text.
    Markdown,
    /// The text as it is.
    Plain,
    /// The whole text in one code block.
    Code,
}

impl Format {
    /// The default for a source mime type: Markdown for `text/markdown` or unknown, else plain.
    pub fn for_mime_type(mime_type: Option<&str>) -> Self {
        match mime_type {
            None => Self::Markdown,
            Some(mime) if mime.eq_ignore_ascii_case("text/markdown") => Self::Markdown,
            Some(_) => Self::Plain,
        }
    }
}

/// One comment to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentBody {
    /// Rich text: `<body>…</body>`, sent as `html_text`.
    Html(String),
    /// Plain text, sent as `text`.
    Text(String),
}

impl CommentBody {
    /// The characters Asana counts.
    pub fn len(&self) -> usize {
        match self {
            Self::Html(s) | Self::Text(s) => s.chars().count(),
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text a reader sees, for recognising the comment among a task's stories.
    pub fn visible_text(&self) -> String {
        match self {
            Self::Html(html) => text_content(html),
            Self::Text(text) => text.clone(),
        }
    }
}

/// How comments are laid out.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Most characters in one comment (the `html_text` or `text` actually sent).
    pub max_chars: usize,
    /// Most comments one context may become.
    pub max_parts: usize,
    /// The header line, e.g. "Context design_notes from ctx://…"; `None` for no header.
    pub header: Option<String>,
    /// Whether to end with a line naming the linker.
    pub footer: bool,
    /// The attach's marker, ending every part (see [`Marker`]); `None` only in tests.
    pub marker: Option<Marker>,
}

/// The context does not fit in the allowed number of comments.
#[derive(Debug, thiserror::Error)]
#[error(
    "the context needs {parts} comments of at most {max_chars} characters; at most {max_parts} are allowed (MAX_COMMENT_PARTS)"
)]
pub struct TooLarge {
    /// Comments it would take.
    pub parts: usize,
    /// The allowed number.
    pub max_parts: usize,
    /// The per-comment limit.
    pub max_chars: usize,
}

/// A rendered top-level block: its html, and its raw code if it is a code block (so it can
/// be split into several code blocks).
#[derive(Debug, Clone)]
pub struct Block {
    html: String,
    code: Option<String>,
}

const FOOTER: &str = "Posted by mcp-asana-linker";

/// Renders `text` in `format` into the comments to post, in order.
pub fn render(text: &str, format: Format, layout: &Layout) -> Result<Vec<CommentBody>, TooLarge> {
    let parts = split_parts(text, format, room(format, layout));
    assemble(&parts, format, layout)
}

/// How many characters of the context's own text fit in one part: the limit less what the
/// header, footer and marker add (the widest of them, for the last of the most parts allowed).
fn room(format: Format, layout: &Layout) -> usize {
    let numbering = |parts: usize| {
        if parts > 1 {
            " (/)".len() + 2 * crate::util::decimal_digits(parts)
        } else {
            0
        }
    };
    let widest_numbering = numbering(layout.max_parts);
    let widest_marker = layout
        .marker
        .as_ref()
        .map_or(0, |m| m.width(layout.max_parts));
    let overhead = if is_html(format) {
        "<body></body>".len()
            + layout.header.as_ref().map_or(0, |h| {
                escaped_len(h) + widest_numbering + "<strong></strong>\n\n".len()
            })
            + if layout.footer {
                FOOTER.len() + "\n\n<em></em>".len()
            } else {
                0
            }
            + widest_marker
            + "\n\n<em></em>".len()
    } else {
        layout
            .header
            .as_ref()
            .map_or(0, |h| h.chars().count() + widest_numbering + 2)
            + if layout.footer { FOOTER.len() + 2 } else { 0 }
            + widest_marker
            + 2
    };
    layout.max_chars.saturating_sub(overhead).max(1)
}

/// Everything but plain text is sent as `html_text`.
fn is_html(format: Format) -> bool {
    !matches!(format, Format::Plain)
}

/// The context's text rendered and cut into parts of at most `room` characters: the costly
/// step, which [`RenderCache`] keeps.
fn split_parts(text: &str, format: Format, room: usize) -> Vec<String> {
    let mut parts = match format {
        Format::Plain => split::text_parts(&xml_safe(text), room),
        Format::Code => split::html_parts(vec![code_block(text)], room),
        Format::Markdown => split::html_parts(markdown::blocks(text), room),
    };
    if parts.is_empty() {
        // An empty context still makes one comment (its header says what it was).
        parts.push(String::new());
    }
    parts
}

/// The comments: each part between the header (numbered when there are several) and the
/// footer and marker lines.
fn assemble(
    parts: &[String],
    format: Format,
    layout: &Layout,
) -> Result<Vec<CommentBody>, TooLarge> {
    let html = is_html(format);
    if parts.len() > layout.max_parts {
        return Err(TooLarge {
            parts: parts.len(),
            max_parts: layout.max_parts,
            max_chars: layout.max_chars,
        });
    }
    let count = parts.len();
    Ok(parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut body = String::with_capacity(
                part.len() + layout.header.as_ref().map_or(0, String::len) + 160,
            );
            let (open, close) = if html { ("<em>", "</em>") } else { ("", "") };
            if html {
                body.push_str("<body>");
            }
            if let Some(header) = &layout.header {
                if html {
                    body.push_str("<strong>");
                    push_escaped(&mut body, header);
                } else {
                    body.push_str(header);
                }
                if count > 1 {
                    body.push_str(&format!(" ({}/{count})", i + 1));
                }
                if html {
                    body.push_str("</strong>");
                }
                body.push_str("\n\n");
            }
            body.push_str(part);
            if i + 1 == count && layout.footer {
                body.push_str("\n\n");
                body.push_str(open);
                body.push_str(FOOTER);
                body.push_str(close);
            }
            if let Some(marker) = &layout.marker {
                body.push_str("\n\n");
                body.push_str(open);
                marker.push_line(&mut body, i + 1, count);
                body.push_str(close);
            }
            if html {
                body.push_str("</body>");
                CommentBody::Html(body)
            } else {
                CommentBody::Text(body)
            }
        })
        .collect())
}

fn code_block(text: &str) -> Block {
    Block {
        html: format!("<code>{}</code>", escape(text)),
        code: Some(text.to_owned()),
    }
}

/// Drops characters XML 1.0 cannot carry (controls other than tab and newline, U+FFFE/F).
pub fn xml_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_xml_safe(&mut out, text);
    out
}

/// Escapes text for element content and attribute values (`& < > "`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text);
    out
}

/// Appends [`xml_safe`]`(text)` to `out`.
pub fn push_xml_safe(out: &mut String, text: &str) {
    // Most text is printable ASCII: copied whole, without a per-character pass.
    if text.bytes().all(is_safe_ascii) {
        out.push_str(text);
        return;
    }
    out.extend(text.chars().filter(|&c| is_xml_char(c)));
}

/// Appends [`escape`]`(text)` to `out`.
pub fn push_escaped(out: &mut String, text: &str) {
    if needs_no_escaping(text) {
        out.push_str(text);
        return;
    }
    for c in text.chars().filter(|&c| is_xml_char(c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// The characters `text` takes once escaped by [`push_escaped`]; with the same shortcut for
/// text that needs no escaping (a header, as a rule), which is counted per byte.
fn escaped_len(text: &str) -> usize {
    if needs_no_escaping(text) {
        return text.len();
    }
    text.chars().map(split::escaped_len).sum()
}

/// Whether `text` is escaped as it is: printable ASCII (or tab, newline) with no markup
/// character.
fn needs_no_escaping(text: &str) -> bool {
    text.bytes()
        .all(|b| is_safe_ascii(b) && !matches!(b, b'&' | b'<' | b'>' | b'"'))
}

/// Printable ASCII, tab or newline: characters XML carries as they are.
fn is_safe_ascii(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b' '..=b'~')
}

fn is_xml_char(c: char) -> bool {
    !(c.is_control() && c != '\n' && c != '\t') && c != '\u{FFFE}' && c != '\u{FFFF}'
}

/// The text of an `html_text` fragment: tags dropped, entities decoded.
pub fn text_content(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => match rest.find('>') {
                Some(end) => rest = &rest[end + 1..],
                None => break,
            },
            '&' => {
                let end = rest.find(';').filter(|e| *e <= 8);
                let decoded = end.and_then(|e| match &rest[1..e] {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    numeric => numeric
                        .strip_prefix('#')
                        .and_then(|n| n.parse().ok())
                        .and_then(char::from_u32),
                });
                match (end, decoded) {
                    (Some(end), Some(ch)) => {
                        out.push(ch);
                        rest = &rest[end + 1..];
                    }
                    _ => {
                        out.push('&');
                        rest = &rest[1..];
                    }
                }
            }
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

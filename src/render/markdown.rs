//! Markdown → Asana `html_text` blocks, using only the tags Asana accepts in every rich-text
//! object (`strong em u s code ol ul li a`). Headings become a bold line, code blocks a
//! `<code>` with their newlines, quotes `<em>` lines, tables aligned text in `<code>`, rules a
//! line of dashes; raw HTML is shown as text.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use super::{Block, escape, push_escaped};

/// What a rule is rendered as.
const RULE: &str = "――――――――――";

/// Link schemes passed on as `<a href>`; anything else is shown as text.
const LINK_SCHEMES: [&str; 3] = ["https://", "http://", "mailto:"];

/// Renders Markdown into top-level blocks, each well-formed on its own.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let options =
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    let mut renderer = Renderer::default();
    for event in Parser::new_ext(markdown, options) {
        renderer.event(event);
    }
    renderer.blocks
}

#[derive(Default)]
struct Renderer {
    blocks: Vec<Block>,
    html: String,
    /// Open block-level tags; a block is complete when this returns to zero.
    depth: usize,
    /// The current top-level block is a code block: its raw text, for splitting.
    code: Option<String>,
    /// Open lists: `true` for ordered.
    lists: Vec<bool>,
    quote_depth: usize,
    /// Closing text for each open link: `</a>` or ` (url)`.
    links: Vec<String>,
    table: Option<Table>,
    /// Paragraphs already written in the current list item or quote, to separate the next.
    paragraphs_in_container: usize,
}

#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    cell: String,
}

impl Renderer {
    fn event(&mut self, event: Event<'_>) {
        if let Some(table) = &mut self.table {
            match event {
                Event::End(TagEnd::Table) => {}
                Event::End(TagEnd::TableCell) => {
                    let cell = std::mem::take(&mut table.cell);
                    if let Some(row) = table.rows.last_mut() {
                        row.push(cell.trim().to_owned());
                    }
                    return;
                }
                Event::Start(Tag::TableHead | Tag::TableRow) => {
                    table.rows.push(Vec::new());
                    return;
                }
                Event::Text(text)
                | Event::Code(text)
                | Event::Html(text)
                | Event::InlineHtml(text) => {
                    table.cell.push_str(&text);
                    return;
                }
                Event::SoftBreak | Event::HardBreak => {
                    table.cell.push(' ');
                    return;
                }
                _ => return,
            }
        }
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => {
                if let Some(code) = &mut self.code {
                    code.push_str(&text);
                }
                self.text(&text);
            }
            Event::Code(text) => {
                self.html.push_str("<code>");
                self.text(&text);
                self.html.push_str("</code>");
            }
            Event::Html(text) | Event::InlineHtml(text) => self.text(&text),
            Event::SoftBreak => self.text(" "),
            Event::HardBreak => self.text("\n"),
            Event::Rule => {
                self.text(RULE);
                self.finish_block_if_top();
            }
            Event::TaskListMarker(done) => self.text(if done { "☑ " } else { "☐ " }),
            Event::FootnoteReference(name) => self.text(&format!("[{name}]")),
            Event::InlineMath(text) | Event::DisplayMath(text) => self.text(&text),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        if is_block(&tag) {
            self.depth += 1;
        }
        match tag {
            Tag::Paragraph
                if (!self.lists.is_empty() || self.quote_depth > 0)
                    && self.paragraphs_in_container > 0 =>
            {
                self.text("\n");
            }
            Tag::Heading { .. } => self.html.push_str("<strong>"),
            Tag::BlockQuote(_) => {
                if self.quote_depth == 0 {
                    self.html.push_str("<em>");
                }
                self.quote_depth += 1;
                self.paragraphs_in_container = 0;
            }
            Tag::CodeBlock(_) => {
                if self.depth == 1 {
                    self.code = Some(String::new());
                } else if self.paragraphs_in_container > 0 {
                    self.text("\n");
                }
                self.html.push_str("<code>");
            }
            Tag::List(start) => {
                if self.quote_depth > 0 {
                    self.lists.push(start.is_some());
                    return;
                }
                self.html
                    .push_str(if start.is_some() { "<ol>" } else { "<ul>" });
                self.lists.push(start.is_some());
            }
            Tag::Item => {
                self.paragraphs_in_container = 0;
                if self.quote_depth > 0 {
                    self.text("\n• ");
                } else {
                    self.html.push_str("<li>");
                }
            }
            Tag::Table(_) => self.table = Some(Table::default()),
            Tag::Emphasis => self.html.push_str("<em>"),
            Tag::Strong => self.html.push_str("<strong>"),
            Tag::Strikethrough => self.html.push_str("<s>"),
            Tag::Link { dest_url, .. } => self.open_link(&dest_url, ""),
            Tag::Image { dest_url, .. } => self.open_link(&dest_url, "image: "),
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => self.paragraphs_in_container += 1,
            TagEnd::Heading(_) => self.html.push_str("</strong>"),
            TagEnd::BlockQuote(_) => {
                self.quote_depth -= 1;
                if self.quote_depth == 0 {
                    self.html.push_str("</em>");
                }
            }
            TagEnd::CodeBlock => {
                // The last newline of a code block ends it; it is not content.
                if self.html.ends_with('\n') {
                    self.html.pop();
                }
                if let Some(code) = &mut self.code
                    && code.ends_with('\n')
                {
                    code.pop();
                }
                self.html.push_str("</code>");
            }
            TagEnd::List(_) => {
                let ordered = self.lists.pop().unwrap_or(false);
                if self.quote_depth == 0 {
                    self.html.push_str(if ordered { "</ol>" } else { "</ul>" });
                }
            }
            TagEnd::Item if self.quote_depth == 0 => self.html.push_str("</li>"),
            TagEnd::Table => {
                if let Some(table) = self.table.take() {
                    self.html.push_str("<code>");
                    self.text(&aligned(&table.rows));
                    self.html.push_str("</code>");
                }
            }
            TagEnd::Emphasis => self.html.push_str("</em>"),
            TagEnd::Strong => self.html.push_str("</strong>"),
            TagEnd::Strikethrough => self.html.push_str("</s>"),
            TagEnd::Link | TagEnd::Image => {
                let close = self.links.pop().unwrap_or_default();
                if close == "</a>" {
                    self.html.push_str(&close);
                } else {
                    self.text(&close);
                }
            }
            _ => {}
        }
        if is_block_end(&tag) {
            self.depth = self.depth.saturating_sub(1);
            self.finish_block_if_top();
        }
    }

    fn open_link(&mut self, url: &str, prefix: &str) {
        if LINK_SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            self.html.push_str(&format!("<a href=\"{}\">", escape(url)));
            self.links.push("</a>".to_owned());
        } else {
            self.links.push(if url.is_empty() {
                String::new()
            } else {
                format!(" ({url})")
            });
        }
        self.text(prefix);
    }

    fn text(&mut self, text: &str) {
        push_escaped(&mut self.html, text);
    }

    fn finish_block_if_top(&mut self) {
        if self.depth > 0 || self.html.is_empty() {
            return;
        }
        self.blocks.push(Block {
            html: std::mem::take(&mut self.html),
            code: self.code.take(),
        });
        self.paragraphs_in_container = 0;
    }
}

fn is_block(tag: &Tag<'_>) -> bool {
    matches!(
        tag,
        Tag::Paragraph
            | Tag::Heading { .. }
            | Tag::BlockQuote(_)
            | Tag::CodeBlock(_)
            | Tag::HtmlBlock
            | Tag::List(_)
            | Tag::Item
            | Tag::FootnoteDefinition(_)
            | Tag::Table(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_)
    )
}

fn is_block_end(tag: &TagEnd) -> bool {
    matches!(
        tag,
        TagEnd::Paragraph
            | TagEnd::Heading(_)
            | TagEnd::BlockQuote(_)
            | TagEnd::CodeBlock
            | TagEnd::HtmlBlock
            | TagEnd::List(_)
            | TagEnd::Item
            | TagEnd::FootnoteDefinition
            | TagEnd::Table
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::MetadataBlock(_)
    )
}

/// Table rows as columns padded to equal width, separated by ` | `, with a rule under the
/// header row.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: &Vec<String>| {
        (0..columns)
            .map(|c| {
                let cell = row.get(c).map(String::as_str).unwrap_or("");
                let pad = widths[c].saturating_sub(cell.chars().count());
                format!("{cell}{}", " ".repeat(pad))
            })
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    let mut lines = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        lines.push(line(row));
        if i == 0 {
            lines.push(
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("-+-"),
            );
        }
    }
    lines.join("\n")
}

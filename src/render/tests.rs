//! Renderer tests: examples, golden documents, and properties over arbitrary Markdown.

use proptest::prelude::*;

use super::*;

/// The tags Asana accepts in every rich-text object.
const ALLOWED_TAGS: [&str; 10] = [
    "body", "strong", "em", "u", "s", "code", "ol", "ul", "li", "a",
];

fn layout(max_chars: usize) -> Layout {
    Layout {
        max_chars,
        max_parts: 1000,
        header: None,
        footer: false,
        marker: None,
    }
}

fn html(markdown: &str) -> String {
    match render(markdown, Format::Markdown, &layout(60_000))
        .expect("fits")
        .as_slice()
    {
        [CommentBody::Html(html)] => html.clone(),
        other => panic!("expected one html part, got {other:?}"),
    }
}

/// Parses a part as XML and checks Asana's rules; returns its text content.
fn check_part(part: &str) -> String {
    let doc = roxmltree::Document::parse(part).unwrap_or_else(|e| panic!("not XML ({e}): {part}"));
    assert_eq!(doc.root_element().tag_name().name(), "body");
    for node in doc.descendants().filter(|n| n.is_element()) {
        let name = node.tag_name().name();
        assert!(ALLOWED_TAGS.contains(&name), "tag <{name}> in {part}");
        for attribute in node.attributes() {
            assert!(
                name == "a" && attribute.name() == "href",
                "attribute {} on <{name}>",
                attribute.name()
            );
        }
    }
    doc.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn headings_emphasis_code_and_links_use_only_asana_tags() {
    assert_eq!(html("# Title"), "<body><strong>Title</strong></body>");
    assert_eq!(
        html("Some **bold**, *italic*, ~~gone~~ and `code`."),
        "<body>Some <strong>bold</strong>, <em>italic</em>, <s>gone</s> and <code>code</code>.</body>"
    );
    assert_eq!(
        html("[docs](https://example.com/a?b=1&c=\"2\")"),
        "<body><a href=\"https://example.com/a?b=1&amp;c=&quot;2&quot;\">docs</a></body>"
    );
    assert_eq!(
        html("```rust\nfn main() {}\nlet a = 1 < 2;\n```"),
        "<body><code>fn main() {}\nlet a = 1 &lt; 2;</code></body>"
    );
}

#[test]
fn raw_html_and_unsafe_links_are_shown_as_text() {
    assert_eq!(
        html("<script>alert(1)</script>"),
        "<body>&lt;script&gt;alert(1)&lt;/script&gt;</body>"
    );
    assert_eq!(
        html("[x](javascript:alert(1))"),
        "<body>x (javascript:alert(1))</body>"
    );
}

#[test]
fn lists_nest_quotes_become_emphasis_and_tables_align() {
    assert_eq!(
        html("- a\n  - b\n- c"),
        "<body><ul><li>a<ul><li>b</li></ul></li><li>c</li></ul></body>"
    );
    assert_eq!(
        html("1. one\n2. two"),
        "<body><ol><li>one</li><li>two</li></ol></body>"
    );
    assert_eq!(
        html("> quoted\n> text"),
        "<body><em>quoted text</em></body>"
    );
    assert_eq!(
        html("| a | bb |\n|---|---|\n| ccc | d |"),
        "<body><code>a   | bb\n----+---\nccc | d</code></body>"
    );
    assert_eq!(
        html("one\n\n---\n\ntwo"),
        "<body>one\n\n――――――――――\n\ntwo</body>"
    );
}

#[test]
fn a_long_code_block_is_closed_and_reopened_across_numbered_parts() {
    let code = (0..400).map(|i| format!("line {i}\n")).collect::<String>();
    let layout = Layout {
        max_chars: 1000,
        max_parts: 10,
        header: Some("Context big from ctx://big".to_owned()),
        footer: false,
        marker: None,
    };

    let parts = render(&format!("```\n{code}```"), Format::Markdown, &layout).expect("fits in 10");

    assert!(parts.len() > 1);
    for (i, part) in parts.iter().enumerate() {
        let CommentBody::Html(html) = part else {
            panic!("html")
        };
        assert!(
            html.chars().count() <= 1000,
            "part {i} is {} chars",
            html.chars().count()
        );
        assert!(
            html.contains(&format!("({}/{})", i + 1, parts.len())),
            "{html}"
        );
        check_part(html);
    }
}

#[test]
fn more_parts_than_allowed_is_refused() {
    let layout = Layout {
        max_chars: 1000,
        max_parts: 2,
        header: None,
        footer: false,
        marker: None,
    };
    let error = render(&"word ".repeat(1000), Format::Markdown, &layout).expect_err("too large");
    assert_eq!(error.max_parts, 2);
    assert!(error.parts > 2);
}

#[test]
fn plain_and_code_formats_do_not_interpret_markdown() {
    let layout = Layout {
        max_chars: 60_000,
        max_parts: 10,
        header: Some("Context n from x".to_owned()),
        footer: true,
        marker: None,
    };
    assert_eq!(
        render("# not a heading", Format::Plain, &layout).expect("fits"),
        [CommentBody::Text(
            "Context n from x\n\n# not a heading\n\nPosted by mcp-asana-linker".to_owned()
        )]
    );
    assert_eq!(
        render("# <x>", Format::Code, &layout).expect("fits"),
        [CommentBody::Html(
            "<body><strong>Context n from x</strong>\n\n<code># &lt;x&gt;</code>\n\n<em>Posted by mcp-asana-linker</em></body>"
                .to_owned()
        )]
    );
}

#[test]
fn golden_documents_render_as_recorded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for name in ["design_notes", "runbook", "api_review"] {
        let markdown =
            std::fs::read_to_string(dir.join(format!("{name}.md"))).expect("golden input");
        let rendered = html(&markdown);
        let golden = dir.join(format!("{name}.html"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &rendered).expect("write golden");
        }
        let expected = std::fs::read_to_string(&golden).expect("golden output");
        assert_eq!(
            rendered, expected,
            "{name}: rerun with UPDATE_GOLDEN=1 after checking the change"
        );
        check_part(&rendered);
    }
}

#[test]
fn text_content_decodes_what_escape_encodes() {
    let text = "a < b && \"c\" > d";
    assert_eq!(
        text_content(&format!("<body><em>{}</em></body>", escape(text))),
        text
    );
}

#[test]
fn the_escaped_length_of_a_text_is_the_length_escape_gives_it() {
    for text in [
        "Context design_notes (REST context server)",
        "a < b && \"c\" > d",
        "ünïcode, tab\t, nul \u{0} and bell \u{7}",
        "",
    ] {
        let mut escaped = String::new();
        push_escaped(&mut escaped, text);
        assert_eq!(escaped_len(text), escaped.chars().count(), "{text:?}");
    }
}

fn markdownish() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("# ".to_owned()),
        Just("## ".to_owned()),
        Just("\n".to_owned()),
        Just("\n\n".to_owned()),
        Just("- ".to_owned()),
        Just("  - ".to_owned()),
        Just("1. ".to_owned()),
        Just("> ".to_owned()),
        Just("```\n".to_owned()),
        Just("`".to_owned()),
        Just("**".to_owned()),
        Just("*".to_owned()),
        Just("~~".to_owned()),
        Just("| a | b |\n|---|---|\n| 1 | 2 |\n".to_owned()),
        Just("[l](https://x.y/?a=1&b=2)".to_owned()),
        Just("[j](javascript:x)".to_owned()),
        Just("![i](http://x/i.png)".to_owned()),
        Just("<div>&amp;</div>".to_owned()),
        Just("---\n".to_owned()),
        Just("- [x] ".to_owned()),
        "[a-zA-Z0-9 &<>\"'.,é\u{0}\u{7}]{0,40}",
    ];
    prop::collection::vec(pieces, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_markdown_renders_to_valid_parts_within_the_limit_losing_no_text(
        markdown in markdownish(),
        max_chars in 200usize..2000,
    ) {
        let whole = html(&markdown);
        let whole_text = check_part(&whole);

        let parts = render(&markdown, Format::Markdown, &layout(max_chars)).expect("no part cap");

        let mut joined = String::new();
        for part in &parts {
            let CommentBody::Html(html) = part else { panic!("html") };
            prop_assert!(html.chars().count() <= max_chars, "{} > {max_chars}", html.chars().count());
            joined.push_str(&check_part(html));
        }
        prop_assert_eq!(without_whitespace(&joined), without_whitespace(&whole_text));
    }
}

#[test]
fn the_default_format_follows_the_mime_type() {
    assert_eq!(Format::for_mime_type(None), Format::Markdown);
    assert_eq!(
        Format::for_mime_type(Some("text/markdown")),
        Format::Markdown
    );
    assert_eq!(Format::for_mime_type(Some("text/plain")), Format::Plain);
    assert_eq!(
        Format::for_mime_type(Some("application/json")),
        Format::Plain
    );
}

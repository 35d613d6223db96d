//! Rich comments: the exact bodies sent to Asana for comment, pinned, multi-part and
//! custom-field targets; preview without Asana.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_partial_json, method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::helpers::{
    CommentIs, STORIES_PATH, Seed, TestApp, error_code, spawn_app_with, story, without_marker,
};

const VALID: Seed = Seed::Tokens(Duration::from_secs(3600));

async fn rich_app(extra: &[(&str, &str)]) -> TestApp {
    let mut overrides = vec![("COMMENT_HEADER", "true")];
    overrides.extend_from_slice(extra);
    spawn_app_with(VALID, &overrides).await
}

fn attach_body(extra: Value) -> Value {
    let mut body = json!({"task_gid": "1234567890", "context_name": "design_notes"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

#[tokio::test]
async fn markdown_is_posted_as_html_text_with_a_header() {
    let app = rich_app(&[]).await;
    app.mount_context("design_notes", "# Design\nUse **Rust** & <b>care</b>.")
        .await;
    let expected = "<body><strong>Context design_notes (REST context)</strong>\n\n<strong>Design</strong>\n\nUse <strong>Rust</strong> &amp; &lt;b&gt;care&lt;/b&gt;.</body>";
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(CommentIs("html_text", expected.to_owned()))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("1")))
        .expect(1)
        .mount(&app.asana)
        .await;

    let response = app.post_attach(&attach_body(json!({}))).await;

    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_pinned_comment_carries_is_pinned() {
    let app = rich_app(&[("COMMENT_HEADER", "false")]).await;
    app.mount_context("design_notes", "*note*").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(CommentIs(
            "html_text",
            "<body><em>note</em></body>".to_owned(),
        ))
        .and(body_partial_json(json!({"data": {"is_pinned": true}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("1")))
        .expect(1)
        .mount(&app.asana)
        .await;

    let response = app.post_attach(&attach_body(json!({"pin": true}))).await;

    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_context_attached_again_is_posted_as_it_is_now_with_its_own_marker() {
    let app = rich_app(&[]).await;
    let header = "<strong>Context design_notes (REST context)</strong>";
    let mut posted = Vec::new();
    for version in ["First", "First", "Second"] {
        app.context.reset().await;
        app.mount_context("design_notes", &format!("# {version} version"))
            .await;
        app.asana.reset().await;
        app.expect_story("1", 1).await;

        let response = app.post_attach(&attach_body(json!({}))).await;

        assert_eq!(response.status(), 201);
        let post = &app.asana.received_requests().await.expect("recorded")[0];
        let body: Value = serde_json::from_slice(&post.body).expect("JSON body");
        let html = body["data"]["html_text"]
            .as_str()
            .expect("html_text")
            .to_owned();
        assert_eq!(
            without_marker(&html),
            format!("<body>{header}\n\n<strong>{version} version</strong></body>")
        );
        posted.push(html);
    }
    assert_ne!(posted[0], posted[1], "each attach ends with its own marker");
}

/// Creates stories s1, s2, … in the order the posts arrive.
struct Numbered(Arc<AtomicUsize>);

impl Respond for Numbered {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(201).set_body_json(story(&format!("s{n}")))
    }
}

#[tokio::test]
async fn a_long_context_is_posted_as_numbered_parts_in_order() {
    let app = rich_app(&[("ASANA_COMMENT_MAX_CHARS", "1000")]).await;
    let paragraphs: Vec<String> = (1..=3)
        .map(|i| format!("Paragraph {i}: {}", "word ".repeat(120)))
        .collect();
    app.mount_context("design_notes", &paragraphs.join("\n\n"))
        .await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(Numbered(Arc::new(AtomicUsize::new(0))))
        .expect(3)
        .mount(&app.asana)
        .await;

    let response = app.post_attach(&attach_body(json!({"footer": true}))).await;

    assert_eq!(response.status(), 201);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["story_gids"], json!(["s1", "s2", "s3"]));
    assert_eq!(answer["story_gid"], "s1");
    let posts = app.asana.received_requests().await.expect("recorded");
    for (i, post) in posts.iter().enumerate() {
        let body: Value = serde_json::from_slice(&post.body).expect("JSON body");
        let html = body["data"]["html_text"].as_str().expect("html_text");
        let header = format!(
            "<strong>Context design_notes (REST context) ({}/3)</strong>",
            i + 1
        );
        assert!(
            html.starts_with(&format!("<body>{header}")),
            "part {i}: {html}"
        );
        assert!(
            html.contains(&format!("Paragraph {}:", i + 1)),
            "part {i} out of order"
        );
        assert!(html.chars().count() <= 1000);
        assert_eq!(
            html.contains("Posted by mcp-asana-linker"),
            i == 2,
            "footer on the last part only"
        );
        assert!(
            without_marker(html).len() < html.len() && html.contains(&format!(".{}</em>", i + 1)),
            "part {i} ends with its own marker: {html}"
        );
    }
}

#[tokio::test]
async fn more_parts_than_allowed_gets_413_and_posts_nothing() {
    let app = rich_app(&[
        ("ASANA_COMMENT_MAX_CHARS", "1000"),
        ("MAX_COMMENT_PARTS", "2"),
    ])
    .await;
    app.mount_context("design_notes", &"word ".repeat(1000))
        .await;
    app.expect_story("1", 0).await;

    let response = app.post_attach(&attach_body(json!({}))).await;

    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "context_too_large");
}

#[tokio::test]
async fn a_custom_field_target_puts_plain_text_on_the_task() {
    let app = rich_app(&[]).await;
    app.mount_context("design_notes", "# Not rendered").await;
    Mock::given(method("PUT"))
        .and(path("/api/1.0/tasks/1234567890"))
        .and(body_json(
            json!({"data": {"custom_fields": {"777": "# Not rendered"}}}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"gid": "1234567890"}})),
        )
        .expect(1)
        .mount(&app.asana)
        .await;

    let response = app
        .post_attach(&attach_body(json!({"target": {"custom_field_gid": "777"}})))
        .await;

    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["custom_field_gid"], "777");
    assert_eq!(answer["truncated"], false);
    assert_eq!(answer["task_gid"], "1234567890");
}

#[tokio::test]
async fn a_long_custom_field_value_is_truncated_with_a_marker() {
    let app = rich_app(&[]).await;
    app.mount_context("design_notes", &"x".repeat(3000)).await;
    Mock::given(method("PUT"))
        .and(path("/api/1.0/tasks/1234567890"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"gid": "1234567890"}})),
        )
        .expect(1)
        .mount(&app.asana)
        .await;

    let response = app
        .post_attach(&attach_body(json!({"target": {"custom_field_gid": "777"}})))
        .await;

    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["truncated"], true);
    let put = &app.asana.received_requests().await.expect("recorded")[0];
    let body: Value = serde_json::from_slice(&put.body).expect("JSON");
    let value = body["data"]["custom_fields"]["777"].as_str().expect("text");
    assert_eq!(value.chars().count(), 1024);
    assert!(value.ends_with("[truncated by mcp-asana-linker]"));
}

#[tokio::test]
async fn invalid_targets_formats_and_pins_get_400() {
    let app = rich_app(&[]).await;
    let cases = [
        (json!({"target": "story"}), "unknown target name"),
        (
            json!({"target": {"custom_field_gid": "12a"}}),
            "non-digit field gid",
        ),
        (
            json!({"target": {"custom_field_gid": "1"}, "pin": true}),
            "pin on a field",
        ),
        (json!({"format": "html"}), "unknown format"),
    ];
    for (extra, why) in cases {
        let response = app.post_attach(&attach_body(extra)).await;
        assert_eq!(response.status(), 400, "{why}");
        assert_eq!(error_code(response).await, "invalid_request", "{why}");
    }
    assert_eq!(app.upstream_requests().await, 0);
}

#[tokio::test]
async fn preview_returns_the_parts_without_calling_asana() {
    let app = rich_app(&[("ASANA_COMMENT_MAX_CHARS", "1000")]).await;
    app.mount_context(
        "design_notes",
        &format!("# Title\n\n{}", "word ".repeat(300)),
    )
    .await;

    let response = app
        .client
        .post(format!("{}/asana/preview", app.address))
        .json(&attach_body(json!({})))
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), 200);
    let preview: Value = response.json().await.expect("JSON");
    assert_eq!(preview["format"], "markdown");
    let parts = preview["parts"].as_array().expect("parts");
    assert!(parts.len() >= 2, "split: {preview}");
    assert!(
        parts
            .iter()
            .all(|p| p["chars"].as_u64().is_some_and(|c| c <= 1000))
    );
    assert_eq!(parts[0]["field"], "html_text");
    assert!(
        parts[0]["content"]
            .as_str()
            .is_some_and(|c| c.contains("<strong>Title</strong>"))
    );
    assert!(
        app.asana
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn the_header_names_the_kind_of_source_never_its_credentials_or_host() {
    let plain = rich_app(&[]).await;
    let with_credentials = plain
        .context
        .uri()
        .replace("http://", "http://user:s3cret@");
    plain.mount_context("design_notes", "x").await;
    let app = rich_app(&[("MCP_SERVER_URL", &with_credentials)]).await;
    app.expect_story("1", 1).await;
    let opted_in = rich_app(&[
        ("MCP_SERVER_URL", &with_credentials),
        ("COMMENT_HEADER_HOSTS", "true"),
    ])
    .await;

    let attached = app.post_attach(&attach_body(json!({}))).await;
    let preview = app
        .client
        .post(format!("{}/asana/preview", app.address))
        .json(&attach_body(json!({})))
        .send()
        .await
        .expect("sent");
    let opted_in_preview: Value = opted_in
        .client
        .post(format!("{}/asana/preview", opted_in.address))
        .json(&attach_body(json!({})))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");

    let posted = app.asana.received_requests().await.expect("recorded");
    let posted = String::from_utf8_lossy(&posted[0].body).into_owned();
    let answers = format!(
        "{} {}",
        attached.text().await.expect("body"),
        preview.text().await.expect("body")
    );
    for text in [&posted, &answers] {
        assert!(
            !text.contains("s3cret") && !text.contains("user:"),
            "{text}"
        );
        assert!(
            !text.contains("127.0.0.1"),
            "no host unless opted in: {text}"
        );
    }
    assert!(
        posted.contains("Context design_notes (REST context)"),
        "{posted}"
    );
    let content = opted_in_preview["parts"][0]["content"].to_string();
    let host = plain.context.uri().replace("http://", "");
    assert!(
        content.contains(&format!("(REST context on {host})")),
        "{content}"
    );
    assert!(!content.contains("s3cret"), "{content}");
}

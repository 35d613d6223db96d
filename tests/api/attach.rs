//! `POST /asana/attach-context`: the happy path, input rules and upstream failures.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{any, header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{
    ACCESS_TOKEN, CommentIs, STORIES_PATH, Seed, Step, Stories, error_code, spawn_app,
    spawn_app_with, story,
};

#[tokio::test]
async fn attach_posts_plain_text_in_a_data_envelope_and_answers_201() {
    let app = spawn_app().await;
    app.mount_context("design_notes", "# Design\nUse Rust.")
        .await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .and(CommentIs("text", "# Design\nUse Rust.".to_owned()))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("555")))
        .expect(1)
        .mount(&app.asana)
        .await;

    let response = app
        .post_attach(
            &json!({"task_gid": "1234567890", "context_name": "design_notes", "format": "plain"}),
        )
        .await;

    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body,
        json!({
            "story_gid": "555",
            "story_gids": ["555"],
            "task_gid": "1234567890",
            "context_name": "design_notes",
            "posted_as": {"user_gid": "42", "name": "Ada Lovelace"},
            "source": {"kind": "rest", "name": "design_notes"}
        })
    );
}

#[tokio::test]
async fn every_posted_comment_is_recorded_in_the_store_with_its_task_context_and_reference() {
    let app = spawn_app().await;
    app.mount_context("design_notes", "text").await;
    app.expect_story("556", 1).await;

    let response = app
        .post_attach(&json!({"task_gid": "1234567890", "context_name": "design_notes"}))
        .await;

    assert_eq!(response.status(), 201);
    let posted = app.posted_stories().await;
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(
        (posted[0].story_gid.as_str(), posted[0].task_gid.as_str()),
        ("556", "1234567890")
    );
    assert_eq!(posted[0].context_name, "design_notes");
    assert!(
        posted[0].marker.starts_with("ref "),
        "{:?}",
        posted[0].marker
    );
}

#[tokio::test]
async fn context_names_reach_the_context_server_as_exactly_one_path_segment() {
    let cases = [
        ("?", "/contexts/%3F"),
        ("#", "/contexts/%23"),
        ("a b%", "/contexts/a%20b%25"),
    ];
    for (name, expected_path) in cases {
        let app = spawn_app().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"context_text": "t"})))
            .expect(1)
            .mount(&app.context)
            .await;
        app.expect_story("1", 1).await;

        let response = app
            .post_attach(&json!({"task_gid": "1234567890", "context_name": name}))
            .await;

        assert_eq!(response.status(), 201, "for {name:?}");
        let received = app.context.received_requests().await.expect("recording on");
        assert_eq!(received[0].url.path(), expected_path, "for {name:?}");
        assert_eq!(received[0].url.query(), None, "for {name:?}");
        assert_eq!(received[0].url.fragment(), None, "for {name:?}");
    }
}

#[tokio::test]
async fn rest_names_a_decoding_proxy_would_split_get_400_and_reach_no_upstream() {
    for name in ["../_log", "a/b", "a\\b", "..%2F_log"] {
        let app = spawn_app().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&app.context)
            .await;

        let response = app
            .post_attach(&json!({"task_gid": "1234567890", "context_name": name}))
            .await;

        assert_eq!(response.status(), 400, "for {name:?}");
        let message = response.text().await.expect("body");
        assert!(message.contains("REST"), "for {name:?}: {message}");
    }
}

#[tokio::test]
async fn invalid_inputs_get_400_and_reach_no_upstream() {
    let app = spawn_app().await;
    let long_name = "x".repeat(257);
    let long_gid = "1".repeat(33);
    let cases: [(Value, &str); 12] = [
        (
            json!({"task_gid": "", "context_name": "a"}),
            "empty task_gid",
        ),
        (
            json!({"task_gid": long_gid, "context_name": "a"}),
            "33-digit task_gid",
        ),
        (
            json!({"task_gid": "12ab", "context_name": "a"}),
            "letters in task_gid",
        ),
        (
            json!({"task_gid": "../1", "context_name": "a"}),
            "path in task_gid",
        ),
        (
            json!({"task_gid": 123, "context_name": "a"}),
            "numeric task_gid",
        ),
        (
            json!({"task_gid": "1", "context_name": ""}),
            "empty context_name",
        ),
        (
            json!({"task_gid": "1", "context_name": long_name}),
            "257-char context_name",
        ),
        (
            json!({"task_gid": "1", "context_name": "a\nb"}),
            "newline in context_name",
        ),
        (
            json!({"task_gid": "1", "context_name": ".."}),
            "dot-dot context_name",
        ),
        (json!({"task_gid": "1"}), "missing context_name"),
        (
            json!({"task_gid": "1", "context_name": "a", "target": {"custom_field_gid": "5", "extra": 1}}),
            "unknown field inside target",
        ),
        (
            json!({"task_gid": "1", "context_name": "a", "colour": "red"}),
            "unknown top-level field",
        ),
    ];
    for (body, why) in cases {
        let response = app.post_attach(&body).await;
        assert_eq!(response.status(), 400, "{why}");
        assert_eq!(error_code(response).await, "invalid_request", "{why}");
    }
    assert_eq!(app.upstream_requests().await, 0);
}

#[tokio::test]
async fn an_unknown_context_gets_404_context_not_found_and_no_comment() {
    let app = spawn_app().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&app.context)
        .await;
    app.expect_story("1", 0).await;

    let response = app
        .post_attach(&json!({"task_gid": "1234567890", "context_name": "nope"}))
        .await;

    assert_eq!(response.status(), 404);
    assert_eq!(error_code(response).await, "context_not_found");
}

#[tokio::test]
async fn asana_refusals_map_to_their_error_codes_without_a_retry_or_a_look() {
    let cases = [
        (404, "task_not_found", 404),
        (403, "asana_forbidden", 403),
        (400, "invalid_request", 400),
    ];
    for (asana_status, code, status) in cases {
        let app = spawn_app().await;
        app.mount_context("n", "t").await;
        Mock::given(method("POST"))
            .and(path(STORIES_PATH))
            .respond_with(
                ResponseTemplate::new(asana_status)
                    .set_body_json(json!({"errors": [{"message": "asana says no"}]})),
            )
            .expect(1)
            .mount(&app.asana)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .named("no look at the stories after a refusal")
            .mount(&app.asana)
            .await;

        let response = app
            .post_attach(&json!({"task_gid": "1234567890", "context_name": "n"}))
            .await;

        assert_eq!(response.status(), status, "Asana {asana_status}");
        assert_eq!(error_code(response).await, code, "Asana {asana_status}");
    }
}

#[tokio::test]
async fn asana_5xx_that_created_nothing_is_retried_then_answers_502() {
    for asana_status in [500, 503] {
        let app = spawn_app_with(
            Seed::Tokens(Duration::from_secs(3600)),
            &[("RETRY_MAX_ATTEMPTS", "2")],
        )
        .await;
        app.mount_context("n", "t").await;
        let stories = Stories::default();
        stories
            .mount(
                &app.asana,
                vec![Step::Refuse(ResponseTemplate::new(asana_status))],
            )
            .await;

        let response = app
            .post_attach(&json!({"task_gid": "1234567890", "context_name": "n"}))
            .await;

        assert_eq!(response.status(), 502, "Asana {asana_status}");
        assert_eq!(error_code(response).await, "upstream_error");
        let requests = app.asana.received_requests().await.expect("recorded");
        let count = |verb: &str| {
            requests
                .iter()
                .filter(|r| r.method.as_str() == verb)
                .count()
        };
        assert_eq!(
            (count("POST"), count("GET")),
            (2, 2),
            "Asana {asana_status}: each failed post is looked for, then posted again"
        );
        assert_eq!(stories.count(), 0);
    }
}

#[tokio::test]
async fn asana_429_is_passed_on_with_retry_after() {
    let app = spawn_app().await;
    app.mount_context("n", "t").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .expect(1)
        .mount(&app.asana)
        .await;

    let response = app
        .post_attach(&json!({"task_gid": "1234567890", "context_name": "n"}))
        .await;

    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "30");
    assert_eq!(error_code(response).await, "asana_rate_limited");
}

#[tokio::test]
async fn a_hanging_context_server_gets_504_within_the_timeout() {
    let app = spawn_app_with(
        Seed::Tokens(Duration::from_secs(3600)),
        &[("MCP_TIMEOUT_SECS", "1")],
    )
    .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&app.context)
        .await;
    app.expect_story("1", 0).await;
    let started = std::time::Instant::now();

    let response = app
        .post_attach(&json!({"task_gid": "1234567890", "context_name": "n"}))
        .await;

    assert_eq!(response.status(), 504);
    assert_eq!(error_code(response).await, "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn attach_without_a_connected_account_gets_503_asana_not_connected() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;
    app.mount_context("n", "t").await;

    let response = app
        .post_attach(&json!({"task_gid": "1234567890", "context_name": "n"}))
        .await;

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "asana_not_connected");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/asana/oauth/authorize")),
        "message should tell the user where to go: {body}"
    );
    assert_eq!(app.upstream_requests().await, 0);
}

#[tokio::test]
async fn attach_without_settings_names_what_is_missing() {
    let app = spawn_app_with(
        Seed::Nothing,
        &[("MCP_SERVER_URL", ""), ("ASANA_CLIENT_SECRET", "")],
    )
    .await;

    let response = app
        .post_attach(&json!({"task_gid": "1234567890", "context_name": "n"}))
        .await;

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "not_configured");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("MCP_SERVER_URL or MCP_SERVER_COMMAND")
            && message.contains("ASANA_CLIENT_SECRET"),
        "{message}"
    );
}

//! Contexts from a real MCP server (the Python fixture), in both protocol eras and over stdio.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{CommentIs, STORIES_PATH, Seed, TestApp, error_code, spawn_app_with, story};
use crate::mcp_fixture::{Era, McpFixture, python, script};

const VALID: Seed = Seed::Tokens(Duration::from_secs(3600));

async fn app_for(fixture: &McpFixture, extra: &[(&str, &str)]) -> TestApp {
    let url = fixture.url();
    let mut overrides = vec![("MCP_SERVER_URL", url.as_str()), ("MCP_PROTOCOL", "mcp")];
    overrides.extend_from_slice(extra);
    spawn_app_with(VALID, &overrides).await
}

/// Asana expects exactly one comment with this text.
async fn expect_comment(app: &TestApp, text: &str) {
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(CommentIs("text", text.to_owned()))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("1")))
        .expect(1)
        .named(text.to_owned())
        .mount(&app.asana)
        .await;
}

/// Attaches as plain text, so assertions read the context as the server gave it.
async fn attach(app: &TestApp, mut body: Value) -> (u16, Value) {
    if body.get("format").is_none() {
        body["format"] = json!("plain");
    }
    let response = app.post_attach(&body).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// Every way of naming a context, against a fixture in the given era.
async fn names_resolve_to_resources_and_prompts(era: Era) {
    let fixture = McpFixture::start(era);
    let app = app_for(&fixture, &[]).await;
    let design_notes = json!({"kind": "mcp-resource", "uri": "ctx://contexts/design_notes"});
    let cases = [
        (
            json!({"context_name": "design_notes"}),
            "# Design notes\nUse Rust.",
            design_notes.clone(),
        ),
        (
            json!({"context_name": "Design notes"}),
            "# Design notes\nUse Rust.",
            design_notes,
        ),
        (
            json!({"context_name": "ctx://contexts/roadmap"}),
            "Context roadmap from a template.",
            json!({"kind": "mcp-resource", "uri": "ctx://contexts/roadmap"}),
        ),
        (
            json!({"context_name": "release_summary", "arguments": {"version": "1.2.3"}}),
            "Summarise release 1.2.3 for engineers.",
            json!({"kind": "mcp-prompt", "name": "release_summary"}),
        ),
        (
            json!({"context_name": "logo"}),
            "[binary content: ctx://blobs/logo.png (image/png, 29 bytes)]",
            json!({"kind": "mcp-resource", "uri": "ctx://blobs/logo.png"}),
        ),
    ];
    for (mut body, text, source) in cases {
        app.asana.reset().await;
        expect_comment(&app, text).await;
        body["task_gid"] = json!("1234567890");

        let (status, answer) = attach(&app, body.clone()).await;

        assert_eq!(status, 201, "{era:?} {body}: {answer}");
        assert_eq!(answer["source"], source, "{era:?} {body}");
        app.asana.verify().await;
    }
    let (modern, legacy) = (
        fixture.count("server/discover"),
        fixture.count("initialize"),
    );
    match era {
        Era::Modern => assert_eq!(
            (modern, legacy),
            (1, 0),
            "one 2026-07-28 discover, no initialize"
        ),
        Era::Legacy => assert_eq!(legacy, 1, "one legacy initialize"),
    }
}

#[tokio::test]
async fn names_uris_and_prompts_resolve_in_the_2026_07_28_era() {
    names_resolve_to_resources_and_prompts(Era::Modern).await;
}

#[tokio::test]
async fn names_uris_and_prompts_resolve_in_the_legacy_era() {
    names_resolve_to_resources_and_prompts(Era::Legacy).await;
}

#[tokio::test]
async fn twenty_attaches_share_one_session_which_survives_a_server_restart() {
    let mut fixture = McpFixture::start(Era::Legacy);
    let app = app_for(&fixture, &[]).await;
    app.expect_story("1", 21).await;
    let body = json!({"task_gid": "1234567890", "context_name": "design_notes"});

    for _ in 0..20 {
        assert_eq!(attach(&app, body.clone()).await.0, 201);
    }
    let handshakes = fixture.count("initialize");
    fixture.restart();
    let (status, answer) = attach(&app, body).await;

    assert_eq!(handshakes, 1, "20 attaches, one handshake");
    assert_eq!(status, 201, "after the restart: {answer}");
    assert_eq!(
        fixture.count("initialize"),
        2,
        "one new session after the restart"
    );
}

#[tokio::test]
async fn concurrent_first_attaches_share_one_handshake() {
    let fixture = McpFixture::start(Era::Modern);
    let app = app_for(&fixture, &[]).await;
    app.expect_story("1", 20).await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = format!("{}/asana/attach-context", app.address);
        requests.spawn(async move {
            client
                .post(url)
                .json(&json!({"task_gid": "1234567890", "context_name": "design_notes"}))
                .send()
                .await
        });
    }

    while let Some(response) = requests.join_next().await {
        assert_eq!(response.expect("task").expect("sent").status(), 201);
    }
    assert_eq!(fixture.count("server/discover"), 1);
}

#[tokio::test]
async fn a_stdio_server_is_spawned_and_restarted_when_it_dies() {
    let dir = tempfile::tempdir().expect("dir");
    let pid_file = dir.path().join("pid");
    let command = format!(
        "'{}' '{}' --stdio --pid-file '{}'",
        python().display(),
        script().display(),
        pid_file.display()
    );
    let app = spawn_app_with(
        VALID,
        &[
            ("MCP_SERVER_URL", ""),
            ("MCP_SERVER_COMMAND", &command),
            ("MCP_PROTOCOL", "auto"),
            // Python importing the MCP package can take seconds on a loaded machine.
            ("MCP_TIMEOUT_SECS", "15"),
        ],
    )
    .await;
    app.expect_story("1", 2).await;
    let body = json!({"task_gid": "1234567890", "context_name": "design_notes"});

    let (first, answer) = attach(&app, body.clone()).await;
    assert_eq!(first, 201, "the first attach spawns the child: {answer}");
    let first_pid = std::fs::read_to_string(&pid_file).expect("pid written");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", first_pid.trim()])
        .status()
        .expect("kill runs");
    let (second, answer) = attach(&app, body).await;

    assert!(killed.success());
    assert_eq!(second, 201, "after the child died: {answer}");
    let second_pid = std::fs::read_to_string(&pid_file).expect("pid written");
    assert_ne!(first_pid, second_pid, "a new child was spawned");
}

#[tokio::test]
async fn auto_picks_rest_for_a_rest_server_and_mcp_for_an_mcp_server() {
    let fixture = McpFixture::start(Era::Modern);
    let mcp_app = app_for(&fixture, &[("MCP_PROTOCOL", "auto")]).await;
    let rest_app = spawn_app_with(VALID, &[("MCP_PROTOCOL", "auto")]).await;
    rest_app.mount_context("design_notes", "from REST").await;
    mcp_app.expect_story("1", 2).await;
    rest_app.expect_story("2", 3).await;
    let body = json!({"task_gid": "1234567890", "context_name": "design_notes"});

    for _ in 0..2 {
        let (mcp_status, mcp_answer) = attach(&mcp_app, body.clone()).await;
        let (rest_status, rest_answer) = attach(&rest_app, body.clone()).await;

        assert_eq!((mcp_status, rest_status), (201, 201));
        assert_eq!(mcp_answer["source"]["kind"], "mcp-resource");
        assert_eq!(rest_answer["source"]["kind"], "rest");
    }
    let probes = mcp_probes(&rest_app).await;
    assert!(probes >= 1, "auto tried MCP first");
    assert_eq!(attach(&rest_app, body).await.0, 201);
    assert_eq!(mcp_probes(&rest_app).await, probes, "the decision is kept");
}

#[tokio::test]
async fn auto_settles_on_rest_from_the_listing_route_and_asks_once() {
    let app = spawn_app_with(VALID, &[("MCP_PROTOCOL", "auto")]).await;
    app.mount_context("design_notes", "from REST").await;
    app.expect_story("2", 1).await;

    for _ in 0..3 {
        let listing = app
            .client
            .get(format!("{}/contexts", app.address))
            .send()
            .await
            .expect("sent");
        assert_eq!(listing.status(), 501);
        assert_eq!(error_code(listing).await, "listing_not_supported");
    }
    let probes = mcp_probes(&app).await;
    let (status, _) = attach(
        &app,
        json!({"task_gid": "1234567890", "context_name": "design_notes"}),
    )
    .await;

    assert_eq!(status, 201);
    assert!(probes >= 1, "auto tried MCP once");
    assert_eq!(
        mcp_probes(&app).await,
        probes,
        "decided by the first listing: no handshake after it"
    );
}

/// POSTs the REST server received: MCP handshake attempts.
async fn mcp_probes(app: &TestApp) -> usize {
    app.context
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count()
}

#[tokio::test]
async fn unknown_names_get_404_with_close_names_and_unknown_uris_get_404() {
    let fixture = McpFixture::start(Era::Modern);
    let app = app_for(&fixture, &[]).await;
    app.expect_story("1", 0).await;

    let (status, answer) = attach(
        &app,
        json!({"task_gid": "1", "context_name": "design_note"}),
    )
    .await;
    let (uri_status, uri_answer) = attach(
        &app,
        json!({"task_gid": "1", "context_name": "other://nope"}),
    )
    .await;

    assert_eq!(status, 404);
    assert_eq!(answer["error"]["code"], "context_not_found");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("close names: design_notes"), "{message}");
    assert_eq!(uri_status, 404, "{uri_answer}");
    assert_eq!(uri_answer["error"]["code"], "context_not_found");
}

#[tokio::test]
async fn a_prompt_missing_a_required_argument_gets_400_with_the_servers_message() {
    let fixture = McpFixture::start(Era::Modern);
    let app = app_for(&fixture, &[]).await;
    app.expect_story("1", 0).await;

    let (status, answer) = attach(
        &app,
        json!({"task_gid": "1", "context_name": "release_summary", "arguments": {"audience": "ops"}}),
    )
    .await;

    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_request");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("version"),
        "the server's message names the argument: {message}"
    );
}

#[tokio::test]
async fn non_string_prompt_arguments_are_refused() {
    let app = spawn_app_with(VALID, &[]).await;

    let response = app
        .post_attach(&json!({"task_gid": "1", "context_name": "p", "arguments": {"n": 3}}))
        .await;

    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_request");
    assert_eq!(app.upstream_requests().await, 0);
}

#[tokio::test]
async fn a_hanging_mcp_call_gets_504_within_the_timeout() {
    let fixture = McpFixture::start(Era::Modern);
    let app = app_for(&fixture, &[("MCP_TIMEOUT_SECS", "1")]).await;
    app.expect_story("1", 0).await;
    // Connect first, so the measured call is the hanging read itself.
    let _ = attach(
        &app,
        json!({"task_gid": "1", "context_name": "no-such-thing"}),
    )
    .await;
    let started = Instant::now();

    let (status, answer) =
        attach(&app, json!({"task_gid": "1", "context_name": "ctx://slow"})).await;

    assert_eq!(status, 504, "{answer}");
    assert_eq!(answer["error"]["code"], "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn get_contexts_lists_resources_and_prompts() {
    let fixture = McpFixture::start(Era::Modern);
    let app = app_for(&fixture, &[]).await;

    let response = app
        .client
        .get(format!("{}/contexts", app.address))
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), 200);
    let catalog: Value = response.json().await.expect("JSON");
    let resources = catalog["resources"].as_array().expect("resources");
    assert!(resources.iter().any(|r| r["name"] == "design_notes"
        && r["uri"] == "ctx://contexts/design_notes"
        && r["mime_type"] == "text/markdown"));
    let prompt = catalog["prompts"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "release_summary"))
        .expect("the prompt is listed");
    assert_eq!(
        prompt["arguments"][0],
        json!({"name": "version", "required": true})
    );
}

#[tokio::test]
async fn the_mcp_auth_token_is_sent_as_a_bearer_token() {
    let app = spawn_app_with(
        VALID,
        &[("MCP_PROTOCOL", "mcp"), ("MCP_AUTH_TOKEN", "mcp-secret")],
    )
    .await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer mcp-secret"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1..)
        .mount(&app.context)
        .await;

    let (status, answer) = attach(&app, json!({"task_gid": "1", "context_name": "n"})).await;

    assert_eq!(status, 502, "{answer}");
}

//! The linker as an MCP server, driven by a real MCP client (the Python `mcp` package) over
//! Streamable HTTP in both protocol eras and over stdio, with hand-built requests only where
//! the HTTP layer itself is under test (401s, hosts, sessions and their keys).

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use mcp_asana_linker::PersonalKeys;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{ACCESS_TOKEN, STORIES_PATH, Seed, TestApp, spawn_app_with, story};
use crate::mcp_fixture::{Era, McpFixture, python};
use crate::people::{GRACE, GRACE_TOKEN, store, two_people};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-asana-linker");
const OPERATOR: &str = "operator-key";

/// How the Python client reaches the linker.
enum Via<'a> {
    /// Streamable HTTP at `url`, in `mode` (`auto`: 2026-07-28; `legacy`: `initialize`).
    Http {
        url: String,
        key: Option<&'a str>,
        mode: &'a str,
    },
    /// `mcp-asana-linker mcp` as a child, with these settings as its environment.
    Stdio(&'a HashMap<String, String>),
}

/// Runs the Python MCP client with `calls`; what it reports (version, tools, results).
async fn client(via: Via<'_>, calls: Value) -> Value {
    let mut command = Command::new(python());
    command
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp_client.py"));
    match via {
        Via::Http { url, key, mode } => {
            command.args(["--url", &url, "--mode", mode]);
            if let Some(key) = key {
                command.args(["--key", key]);
            }
        }
        Via::Stdio(vars) => {
            command.env_clear().envs(vars).args(["--stdio", BIN, "mcp"]);
        }
    }
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the MCP client starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(calls.to_string().as_bytes())
            .expect("calls written");
        child.wait_with_output().expect("the MCP client ends")
    })
    .await
    .expect("joined");
    assert!(
        output.status.success(),
        "the MCP client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the client's JSON report")
}

fn http<'a>(app: &TestApp, key: Option<&'a str>, mode: &'a str) -> Via<'a> {
    Via::Http {
        url: format!("{}/mcp", app.address),
        key,
        mode,
    }
}

fn call(tool: &str, arguments: Value) -> Value {
    json!({"tool": tool, "arguments": arguments})
}

fn tool<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tool {name} in {report}"))
}

/// Asana answers each comment posted with `token` (201, story `gid`), `times` times exactly.
async fn expect_posts(app: &TestApp, token: &str, gid: &str, times: u64) {
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(header("authorization", format!("Bearer {token}")))
        .respond_with(ResponseTemplate::new(201).set_body_json(story(gid)))
        .expect(times)
        .named(format!("comments posted with {token}"))
        .mount(&app.asana)
        .await;
}

/// A connected linker whose contexts come from the Python MCP fixture.
async fn linker_with_fixture(fixture: &McpFixture, extra: &[(&str, &str)]) -> TestApp {
    let url = fixture.url();
    let mut overrides = vec![("MCP_SERVER_URL", url.as_str()), ("MCP_PROTOCOL", "mcp")];
    overrides.extend_from_slice(extra);
    spawn_app_with(Seed::Tokens(Duration::from_secs(3600)), &overrides).await
}

#[tokio::test]
async fn a_modern_client_lists_truthful_tools_and_calls_each_one_against_asana() {
    let fixture = McpFixture::start(Era::Modern);
    let app = linker_with_fixture(&fixture, &[("LINKER_API_KEY", OPERATOR)]).await;
    let acme = mcp_asana_linker::Workspace {
        gid: "1111".into(),
        name: "Acme".into(),
    };
    store(&app)
        .await
        .record_workspaces("42", &[acme])
        .await
        .expect("workspaces");
    expect_posts(&app, ACCESS_TOKEN, "555", 1).await;
    Mock::given(method("GET"))
        .and(path("/api/1.0/workspaces/1111/typeahead"))
        .and(query_param("resource_type", "task"))
        .and(query_param("query", "release notes"))
        .and(header("authorization", format!("Bearer {ACCESS_TOKEN}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"gid": "1234567890", "name": "Write the release notes", "completed": false,
             "permalink_url": "https://app.asana.com/0/0/1234567890"}
        ]})))
        .expect(1)
        .mount(&app.asana)
        .await;

    let report = client(
        http(&app, Some(OPERATOR), "auto"),
        json!([
            call("list_contexts", json!({})),
            call("find_tasks", json!({"query": "release notes"})),
            call("preview_context", json!({"context": "design_notes"})),
            call(
                "attach_context",
                json!({
                    "task": "https://app.asana.com/1/1111/project/222/task/1234567890",
                    "context": "design_notes", "format": "plain"
                })
            ),
            call(
                "attach_context",
                json!({"task": "1234567890", "context": "design_note"})
            ),
            call("attach_context", json!({"task": "1234567890"})),
            call(
                "attach_context",
                json!({"task": "999", "context": "design_notes"})
            ),
        ]),
    )
    .await;

    assert_eq!(report["protocol_version"], "2026-07-28");
    for (name, read_only) in [
        ("list_contexts", true),
        ("find_tasks", true),
        ("preview_context", true),
        ("attach_context", false),
    ] {
        let tool = tool(&report, name);
        assert_eq!(tool["annotations"]["readOnlyHint"], read_only, "{name}");
        assert_eq!(tool["annotations"]["destructiveHint"], false, "{name}");
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{name}");
    }
    assert_eq!(
        tool(&report, "attach_context")["annotations"]["idempotentHint"],
        false,
        "without a key, every call posts again"
    );
    let results = report["results"].as_array().expect("results");
    let names: Vec<&Value> = results[0]["structured"]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| &r["name"])
        .collect();
    assert!(names.contains(&&json!("design_notes")), "{names:?}");
    assert_eq!(
        results[1]["structured"]["tasks"][0]["gid"], "1234567890",
        "found through the typeahead"
    );
    assert_eq!(results[2]["structured"]["parts"][0]["field"], "html_text");
    assert_eq!(results[3]["is_error"], false, "{}", results[3]);
    assert_eq!(results[3]["structured"]["story_gids"], json!(["555"]));
    assert_eq!(
        results[3]["structured"]["links"],
        json!(["https://app.asana.com/0/0/1234567890/555"])
    );
    assert_eq!(results[3]["structured"]["posted_as"]["user_gid"], "42");
    assert_eq!(results[4]["is_error"], true);
    let not_found = results[4]["text"][0].as_str().expect("text");
    assert!(
        not_found.contains("close names: design_notes"),
        "a model can act on it: {not_found}"
    );
    assert_eq!(
        results[5]["protocol_error"], -32602,
        "a malformed call is a protocol error: {}",
        results[5]
    );
    assert_eq!(results[6]["is_error"], true, "Asana has no task 999");
    let missing_task = results[6]["text"][0].as_str().expect("text");
    assert!(
        missing_task.contains("task 999 was not found"),
        "{missing_task}"
    );

    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // The recorder is shared by every test in this process: other tests count calls too.
    for series in [
        r#"linker_mcp_tool_calls_total{tool="attach_context",outcome="ok"} "#,
        r#"linker_mcp_tool_calls_total{tool="attach_context",outcome="refused"} "#,
        r#"linker_mcp_tool_calls_total{tool="find_tasks",outcome="ok"} "#,
    ] {
        let count: u64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        assert!(count >= 1, "{series} in\n{metrics}");
    }
}

#[tokio::test]
async fn legacy_sessions_of_two_people_post_as_their_own_connections_at_once() {
    let app = two_people(&[("LINKER_API_KEY", OPERATOR)]).await;
    expect_posts(&app, ACCESS_TOKEN, "901", 1).await;
    expect_posts(&app, GRACE_TOKEN, "902", 1).await;
    let keys = PersonalKeys::new(store(&app).await);
    let ada = keys.issue("42").await.expect("Ada's key");
    let grace = keys.issue(GRACE).await.expect("Grace's key");
    let attach = call(
        "attach_context",
        json!({"task": "1234567890", "context": "design_notes", "format": "plain"}),
    );
    // A personal key acts as its owner only: naming Ada is refused, and nothing is posted.
    let as_ada = call(
        "attach_context",
        json!({"task": "1234567890", "context": "design_notes", "as": "ada@example.com"}),
    );

    let (ada_report, grace_report) = tokio::join!(
        client(
            http(&app, Some(ada.key.expose_secret()), "legacy"),
            json!([attach])
        ),
        client(
            http(&app, Some(grace.key.expose_secret()), "legacy"),
            json!([attach, as_ada])
        ),
    );

    for (report, user) in [(&ada_report, "42"), (&grace_report, GRACE)] {
        assert_eq!(
            report["protocol_version"], "2025-11-25",
            "the handshake era"
        );
        let result = &report["results"][0];
        assert_eq!(
            result["structured"]["posted_as"]["user_gid"], user,
            "{result}"
        );
    }
    let named = &grace_report["results"][1];
    assert_eq!(named["is_error"], true, "{named}");
    assert!(
        named["text"][0]
            .as_str()
            .is_some_and(|t| t.contains("acts only as its owner")),
        "{named}"
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_posts_one_comment_and_replays_its_outcome() {
    let app = spawn_app_with(Seed::Tokens(Duration::from_secs(3600)), &[]).await;
    app.mount_context("design_notes", "notes").await;
    expect_posts(&app, ACCESS_TOKEN, "777", 1).await;
    let attach = call(
        "attach_context",
        json!({"task": "1234567890", "context": "design_notes", "idempotency_key": "retry-1"}),
    );

    let report = client(http(&app, None, "auto"), json!([attach, attach])).await;

    let results = &report["results"];
    assert_eq!(results[0]["structured"]["story_gids"], json!(["777"]));
    assert_eq!(results[0]["structured"]["replayed"], false);
    assert_eq!(results[1]["structured"]["story_gids"], json!(["777"]));
    assert_eq!(results[1]["structured"]["replayed"], true);
}

#[tokio::test]
async fn without_a_connection_the_tool_says_where_to_connect() {
    let app = spawn_app_with(
        Seed::Nothing,
        &[("PUBLIC_URL", "https://linker.example.com")],
    )
    .await;
    app.mount_context("design_notes", "notes").await;

    let report = client(
        http(&app, None, "auto"),
        json!([call(
            "attach_context",
            json!({"task": "1", "context": "design_notes"})
        )]),
    )
    .await;

    let result = &report["results"][0];
    assert_eq!(result["is_error"], true);
    let text = result["text"][0].as_str().expect("text");
    assert!(
        text.contains("https://linker.example.com/"),
        "the URL to connect at: {text}"
    );
    assert_eq!(
        app.upstream_requests().await,
        0,
        "nothing was fetched or posted"
    );
}

/// `POST /mcp` with a hand-built JSON-RPC message.
async fn post_mcp(
    app: &TestApp,
    bearer: Option<&str>,
    host: Option<&str>,
    session: Option<&str>,
    message: Value,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/mcp", app.address))
        .header("accept", "application/json, text/event-stream")
        .json(&message);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(host) = host {
        request = request.header("host", host);
    }
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    request.send().await.expect("sent")
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}})
}

fn list_tools() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_401_with_a_bearer_challenge() {
    let app = spawn_app_with(Seed::Nothing, &[("LINKER_API_KEY", OPERATOR)]).await;

    let missing = post_mcp(&app, None, None, None, initialize()).await;
    let wrong = post_mcp(&app, Some("not-the-key"), None, None, initialize()).await;
    let revoked_looking = post_mcp(&app, Some("mal_0000"), None, None, initialize()).await;
    let right = post_mcp(&app, Some(OPERATOR), None, None, initialize()).await;

    for (response, challenge) in [
        (missing, r#"Bearer realm="mcp-asana-linker""#),
        (
            wrong,
            r#"Bearer realm="mcp-asana-linker", error="invalid_token""#,
        ),
        (
            revoked_looking,
            r#"Bearer realm="mcp-asana-linker", error="invalid_token""#,
        ),
    ] {
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"].to_str().ok(),
            Some(challenge)
        );
    }
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn the_public_hosts_name_is_served_and_another_name_is_refused() {
    let app = spawn_app_with(
        Seed::Nothing,
        &[
            ("LINKER_API_KEY", OPERATOR),
            ("PUBLIC_URL", "https://linker.example.com"),
        ],
    )
    .await;

    let public = post_mcp(
        &app,
        Some(OPERATOR),
        Some("linker.example.com"),
        None,
        initialize(),
    )
    .await;
    let other = post_mcp(
        &app,
        Some(OPERATOR),
        Some("rebind.attacker.example"),
        None,
        initialize(),
    )
    .await;

    assert_eq!(public.status(), 200);
    assert!(public.headers().contains_key("mcp-session-id"));
    assert_eq!(other.status(), 403);
}

#[tokio::test]
async fn a_session_belongs_to_its_key_and_ends_when_the_key_is_revoked() {
    let app = two_people(&[("LINKER_API_KEY", OPERATOR)]).await;
    let keys = PersonalKeys::new(store(&app).await);
    let grace = keys.issue(GRACE).await.expect("Grace's key");
    let ada = keys.issue("42").await.expect("Ada's key");
    let grace_key = grace.key.expose_secret();

    let opened = post_mcp(&app, Some(grace_key), None, None, initialize()).await;
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let acked = post_mcp(&app, Some(grace_key), None, Some(&session), initialized).await;
    assert_eq!(acked.status(), 202);

    let own = post_mcp(&app, Some(grace_key), None, Some(&session), list_tools()).await;
    let other = post_mcp(
        &app,
        Some(ada.key.expose_secret()),
        None,
        Some(&session),
        list_tools(),
    )
    .await;
    assert_eq!(own.status(), 200);
    assert!(own.text().await.expect("body").contains("attach_context"));
    assert_eq!(other.status(), 404, "another key does not see the session");

    keys.revoke_all(GRACE).await.expect("revoke");
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let after = loop {
        let status = post_mcp(&app, Some(grace_key), None, Some(&session), list_tools())
            .await
            .status();
        if status != 200 || std::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(after, 401, "a revoked key's session ends with it");
    assert!(
        store(&app)
            .await
            .mcp_session(&session)
            .await
            .expect("read")
            .is_none(),
        "and the store forgot it"
    );
}

#[tokio::test]
async fn the_stdio_server_attaches_as_the_default_connection() {
    let app = spawn_app_with(Seed::Tokens(Duration::from_secs(3600)), &[]).await;
    app.mount_context("design_notes", "notes").await;
    expect_posts(&app, ACCESS_TOKEN, "321", 1).await;
    let mut vars = app.vars.clone();
    vars.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());

    let report = client(
        Via::Stdio(&vars),
        json!([call(
            "attach_context",
            json!({"task": "1234567890", "context": "design_notes"})
        )]),
    )
    .await;

    assert_eq!(
        report["results"][0]["structured"]["story_gids"],
        json!(["321"])
    );
    assert_eq!(
        report["results"][0]["structured"]["posted_as"]["user_gid"],
        "42"
    );
}

/// A stateless (2026-07-28) `tools/call` of `name`, with `params` merged into its params.
pub fn stateless_call(name: &str, arguments: Value, params: Value) -> Value {
    let mut message = json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {
    "name": name, "arguments": arguments,
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    }}});
    if let (Some(into), Some(from)) = (message["params"].as_object_mut(), params.as_object()) {
        for (key, value) in from {
            into.insert(key.clone(), value.clone());
        }
    }
    message
}

/// `POST /mcp` as MCP clients send a stateless call, with `accept` and `headers`; its status,
/// content type and body.
async fn post_stateless(
    app: &TestApp,
    accept: &str,
    headers: &[(&str, &str)],
    message: &Value,
) -> (u16, String, Value) {
    let mut request = app
        .client
        .post(format!("{}/mcp", app.address))
        .header("accept", accept)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .json(message);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("text")
        .to_owned();
    let body = response.text().await.expect("a body");
    (status, content_type, without_markers(&body))
}

/// `body` read as JSON, each attach marker (`ref` and 16 hex digits, random per preview)
/// replaced by `ref MARKER`.
fn without_markers(body: &str) -> Value {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find("ref ") {
        let (before, after) = rest.split_at(at + 4);
        out.push_str(before);
        let hex = after.get(..16).unwrap_or_default();
        if hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push_str("MARKER");
            rest = &after[16..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The linker answers a stateless `tools/call` in its plain form itself, and leaves any
/// other to rmcp. An `Accept` with weights is one the linker leaves to rmcp and that rmcp
/// serves the same way, so each call is sent both ways and the answers must be the same:
/// the well-formed calls (which must reach Asana as often as they are sent), one with a
/// progress token (left to rmcp), and the ones rmcp must refuse (the name in the header not
/// the body's, another version, an unknown tool, an argument too many).
#[tokio::test]
async fn a_plain_stateless_call_is_answered_exactly_as_rmcp_answers_it() {
    let app = spawn_app_with(Seed::Tokens(Duration::from_secs(3600)), &[]).await;
    app.mount_context("design_notes", "# Notes\n\nSome *notes*.")
        .await;
    // Both attaches, each sent both ways, and the last call.
    expect_posts(&app, ACCESS_TOKEN, "4242", 5).await;
    let attach = json!({"task": "1234567890", "context": "design_notes"});
    let plain = "application/json, text/event-stream";
    let weighted = "application/json;q=1, text/event-stream;q=0.9";
    let mut wrong_version = stateless_call("list_contexts", json!({}), json!({}));
    wrong_version["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] =
        json!("2025-11-25");
    let mut progress = stateless_call("attach_context", attach.clone(), json!({}));
    progress["params"]["_meta"]["progressToken"] = json!("p1");
    let cases = [
        (
            "attach_context",
            stateless_call("attach_context", attach.clone(), json!({})),
        ),
        ("attach_context", progress),
        (
            "preview_context",
            stateless_call(
                "preview_context",
                json!({"context": "design_notes"}),
                json!({}),
            ),
        ),
        (
            "list_contexts",
            stateless_call("list_contexts", json!({}), json!({})),
        ),
        (
            "find_tasks",
            stateless_call("attach_context", attach.clone(), json!({})),
        ),
        ("list_contexts", wrong_version),
        (
            "no_such_tool",
            stateless_call("no_such_tool", json!({}), json!({})),
        ),
        (
            "attach_context",
            stateless_call(
                "attach_context",
                json!({"task": "1", "context": "x", "extra": 1}),
                json!({}),
            ),
        ),
    ];

    for (name, message) in &cases {
        let headers = [("mcp-name", *name)];
        let direct = post_stateless(&app, plain, &headers, message).await;
        let through_rmcp = post_stateless(&app, weighted, &headers, message).await;
        assert_eq!(direct, through_rmcp, "{name}: {message}");
    }
    let (status, _, attached) =
        post_stateless(&app, plain, &[("mcp-name", "attach_context")], &cases[0].1).await;
    assert_eq!(status, 200);
    assert_eq!(attached["id"], 11);
    assert_eq!(
        attached["result"]["structuredContent"]["story_gids"],
        json!(["4242"])
    );
}

//! Webhooks: handshake, signatures, `/context` comments, dedupe across restarts, no loops,
//! rules, a receiver that never waits, and registration through a handshake.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use mcp_asana_linker::store::Store;
use mcp_asana_linker::webhooks::{HookId, HookStore};
use mcp_asana_linker::{AppState, Settings};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::helpers::{CommentIs, STORIES_PATH, Seed, TestApp, spawn_app_with, story};

const VALID: Seed = Seed::Tokens(Duration::from_secs(3600));
const SECRET: &str = "hook-secret-1";

/// The hooks in the app's store, as `webhooks register` (another process) sees them.
async fn hooks(app: &TestApp) -> HookStore {
    hook_store(&app.vars, &app.token_path.with_file_name("webhooks.json")).await
}

/// The hooks in the store that settings `vars` name (importing `legacy` if it is there).
pub async fn hook_store(vars: &HashMap<String, String>, legacy: &Path) -> HookStore {
    let settings = Settings::from_vars(vars.clone()).expect("settings");
    let store = Store::open_and_migrate(&settings.database_url, settings.store_sealer)
        .await
        .expect("store");
    HookStore::load(store, legacy).await.expect("hooks")
}

/// Grace (user 77), a second person, with tokens valid for an hour.
fn grace() -> mcp_asana_linker::asana::StoredTokens {
    let mut grace = crate::helpers::stored_tokens("grace-access", None, Duration::from_secs(3600));
    grace.user = mcp_asana_linker::asana::AsanaUser {
        gid: "77".into(),
        name: "Grace Hopper".into(),
        email: Some("grace@example.com".into()),
    };
    grace
}

/// The app's store, as another process opens it.
async fn hooks_store(app: &TestApp) -> Store {
    let settings = Settings::from_vars(app.vars.clone()).expect("settings");
    Store::open(&settings.database_url, settings.store_sealer)
        .await
        .expect("store")
}

/// Announces hook `id` (as `webhooks register` does) in the store `vars` name.
pub async fn announce(vars: &HashMap<String, String>, id: &str) {
    let hook_id = HookId::parse(id).expect("id");
    hook_store(vars, Path::new("/nonexistent/webhooks.json"))
        .await
        .announce(&hook_id, "1", &format!("https://x/asana/webhooks/{id}"))
        .await
        .expect("announce");
}

/// `body` signed with the hook secret `secret`, as Asana signs a delivery.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn handshake(app: &TestApp, hook: &str, secret: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/asana/webhooks/{hook}", app.address))
        .header("x-hook-secret", secret)
        .send()
        .await
        .expect("sent")
}

/// An app with hook `h1` announced and its handshake done.
async fn hooked_app(extra: &[(&str, &str)]) -> TestApp {
    let app = spawn_app_with(VALID, extra).await;
    announce(&app.vars, "h1").await;
    assert_eq!(handshake(&app, "h1", SECRET).await.status(), 200);
    app
}

async fn deliver(app: &TestApp, body: &Value, signature: Option<String>) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).expect("JSON");
    let mut request = app
        .client
        .post(format!("{}/asana/webhooks/h1", app.address))
        .header("content-type", "application/json")
        .body(bytes.clone());
    if let Some(signature) = signature
        .or_else(|| Some(sign(SECRET, &bytes)))
        .filter(|s| !s.is_empty())
    {
        request = request.header("x-hook-signature", signature);
    }
    request.send().await.expect("sent")
}

fn comment_event(story_gid: &str) -> Value {
    json!({"events": [{
        "action": "added",
        "created_at": "2026-11-25T12:00:00.000Z",
        "user": {"gid": "42", "resource_type": "user"},
        "resource": {"gid": story_gid, "resource_type": "story", "resource_subtype": "comment_added"},
        "parent": {"gid": "1234567890", "resource_type": "task"}
    }]})
}

/// Comment `story_gid` on the task reads `text`; Ada (user 42, connected) wrote it.
async fn mount_story(app: &TestApp, story_gid: &str, text: &str) {
    mount_story_by(app, story_gid, text, "42").await;
}

async fn mount_story_by(app: &TestApp, story_gid: &str, text: &str, author: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/api/1.0/stories/{story_gid}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "text": text, "resource_subtype": "comment_added",
            "target": {"gid": "1234567890", "resource_type": "task"},
            "created_by": {"gid": author, "resource_type": "user"}
        }})))
        .mount(&app.asana)
        .await;
}

async fn count(app: &TestApp, http_method: &str, request_path: &str) -> usize {
    crate::helpers::requests(&app.asana, http_method, request_path).await
}

/// Waits until `count` reaches `n` (a poll, bounded).
async fn until_posts(app: &TestApp, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(app, "POST", STORIES_PATH).await < n {
        assert!(Instant::now() < deadline, "expected {n} posted stories");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Gives the workers time to act on an event whose effect would be a (wrong) post.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

#[tokio::test]
async fn only_announced_hooks_get_a_handshake_and_only_once() {
    let app = spawn_app_with(VALID, &[]).await;
    let id = HookId::parse("h1").expect("id");
    hooks(&app)
        .await
        .announce(&id, "1", "https://x/asana/webhooks/h1")
        .await
        .expect("announce");

    let unknown = handshake(&app, "h2", "planted").await;
    let accepted = handshake(&app, "h1", SECRET).await;
    let second = handshake(&app, "h1", "replaced").await;

    assert_eq!(unknown.status(), 403);
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.headers()["x-hook-secret"], SECRET);
    assert_eq!(second.status(), 403);
    let stored = hooks(&app)
        .await
        .secret(&id)
        .await
        .expect("read")
        .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned());
    assert_eq!(
        stored.as_deref(),
        Some(SECRET),
        "the first handshake's secret is kept"
    );
}

#[tokio::test]
async fn heartbeats_pass_and_forged_deliveries_get_401_and_do_nothing() {
    let app = hooked_app(&[]).await;
    let event = comment_event("5001");
    let heartbeat = json!({"events": []});

    let beat = deliver(&app, &heartbeat, None).await;
    let wrong_secret = deliver(
        &app,
        &event,
        Some(sign("other", &serde_json::to_vec(&event).expect("json"))),
    )
    .await;
    let tampered = deliver(&app, &event, Some(sign(SECRET, b"{\"events\":[]}"))).await;
    let missing = deliver(&app, &event, Some(String::new())).await;

    assert_eq!(beat.status(), 200);
    for (response, why) in [
        (wrong_secret, "wrong secret"),
        (tampered, "tampered body"),
        (missing, "no signature"),
    ] {
        assert_eq!(response.status(), 401, "{why}");
    }
    settle().await;
    assert!(
        app.asana
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn a_context_comment_posts_once_even_when_delivered_twice_and_its_own_comment_does_nothing() {
    let app = hooked_app(&[]).await;
    app.mount_context("design_notes", "notes").await;
    mount_story(&app, "5001", "/context design_notes").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("9001")))
        .mount(&app.asana)
        .await;

    assert_eq!(
        deliver(&app, &comment_event("5001"), None).await.status(),
        200
    );
    until_posts(&app, 1).await;
    // Asana tells of a new comment after creating it: by then the linker has its answer and
    // has recorded the comment as its own (the record of posted comments comes after).
    assert_eq!(app.posted_stories().await.len(), 1);
    assert_eq!(
        deliver(&app, &comment_event("5001"), None).await.status(),
        200
    );
    assert_eq!(
        deliver(&app, &comment_event("9001"), None).await.status(),
        200
    );
    settle().await;

    assert_eq!(
        count(&app, "POST", STORIES_PATH).await,
        1,
        "one story for two deliveries"
    );
    assert_eq!(count(&app, "GET", "/api/1.0/stories/5001").await, 1);
    assert_eq!(
        count(&app, "GET", "/api/1.0/stories/9001").await,
        0,
        "the linker's own comment is not read"
    );
}

#[tokio::test]
async fn a_restart_between_two_deliveries_does_not_post_again() {
    let app = hooked_app(&[]).await;
    app.mount_context("design_notes", "notes").await;
    mount_story(&app, "5002", "/context design_notes").await;
    app.expect_story("9002", 1).await;
    assert_eq!(
        deliver(&app, &comment_event("5002"), None).await.status(),
        200
    );
    until_posts(&app, 1).await;

    let app = app.restart().await;
    let body = serde_json::to_vec(&comment_event("5002")).expect("json");
    let again = app
        .client
        .post(format!("{}/asana/webhooks/h1", app.address))
        .header("x-hook-signature", sign(SECRET, &body))
        .body(body)
        .send()
        .await
        .expect("sent");
    settle().await;

    assert_eq!(again.status(), 200);
    assert_eq!(count(&app, "POST", STORIES_PATH).await, 1);
}

#[tokio::test]
async fn the_receiver_answers_within_a_second_while_mcp_is_slow() {
    let app = hooked_app(&[]).await;
    Mock::given(method("GET"))
        .and(path("/contexts/design_notes"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"context_text": "slow"}))
                // Slower than the receiver may take, within MCP_TIMEOUT_SECS (2 s in tests).
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&app.context)
        .await;
    mount_story(&app, "5003", "/context design_notes").await;
    app.expect_story("9003", 1).await;
    let started = Instant::now();

    let response = deliver(&app, &comment_event("5003"), None).await;

    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    until_posts(&app, 1).await;
}

#[tokio::test]
async fn a_tag_rule_from_the_rules_file_attaches_its_context_as_whoever_registered_the_hook() {
    let dir = tempfile::tempdir().expect("dir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\non = \"tag_added\"\ntag_gid = \"777\"\ncontext = \"design_notes\"\nformat = \"code\"\n",
    )
    .expect("rules");
    let rules_path = rules.display().to_string();
    let app = hooked_app(&[("WEBHOOK_RULES_PATH", &rules_path)]).await;
    app.mount_context("design_notes", "a < b").await;
    // Grace registered the hook (`webhooks register --as grace@…`): its rules act as her.
    let store = hooks_store(&app).await;
    store.save_consent(&grace()).await.expect("Grace connects");
    store.set_hook_owner("h1", "77").await.expect("owner");
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer grace-access",
        ))
        .and(CommentIs(
            "html_text",
            "<body><code>a &lt; b</code></body>".to_owned(),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("9004")))
        .expect(1)
        .mount(&app.asana)
        .await;
    let tag_added = json!({"events": [{
        "action": "changed",
        "created_at": "2026-11-25T12:00:01.000Z",
        "resource": {"gid": "1234567890", "resource_type": "task"},
        "change": {"field": "tags", "action": "added", "added_value": {"gid": "777", "resource_type": "tag"}}
    }]});

    assert_eq!(deliver(&app, &tag_added, None).await.status(), 200);

    until_posts(&app, 1).await;
}

/// The state a CLI command beside the running service builds (same settings, same files).
async fn cli_state(app: &TestApp) -> AppState {
    AppState::build(&Settings::from_vars(app.vars.clone()).expect("settings"))
        .await
        .expect("cli state")
}

/// Asana's create-webhook endpoint: performs the handshake with the target before answering.
struct HandshakeFirst;

impl Respond for HandshakeFirst {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let target =
            url::Url::parse(body["data"]["target"].as_str().unwrap_or_default()).expect("target");
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", target.port().expect("port")))
            .expect("connect");
        write!(
            stream,
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Hook-Secret: {SECRET}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            target.path()
        )
        .expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = if answer.starts_with("HTTP/1.1 200") {
            201
        } else {
            400
        };
        ResponseTemplate::new(status).set_body_json(json!({
            "data": {"gid": "7777", "target": target.as_str(), "active": true},
            "X-Hook-Secret": SECRET
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_announces_the_hook_and_completes_the_handshake() {
    let app = spawn_app_with(VALID, &[]).await;
    Mock::given(method("POST"))
        .and(path("/api/1.0/webhooks"))
        .respond_with(HandshakeFirst)
        .expect(1)
        .mount(&app.asana)
        .await;
    let cli = cli_state(&app).await;
    cli.store
        .save_consent(&grace())
        .await
        .expect("Grace connects");
    let grace = cli
        .attacher
        .connections
        .find("grace@example.com")
        .await
        .expect("Grace's connection");

    let registered =
        mcp_asana_linker::webhooks::admin::register(&cli, &grace, "1200", &app.address)
            .await
            .expect("registered");

    assert_eq!(registered.webhook_gid, "7777");
    let created = app.asana.received_requests().await.unwrap_or_default();
    let created = created
        .iter()
        .find(|r| r.url.path() == "/api/1.0/webhooks")
        .expect("create webhook");
    assert_eq!(
        created.headers["authorization"], "Bearer grace-access",
        "registered with the connection --as names"
    );
    let hook_id = registered.target.rsplit('/').next().expect("hook id");
    assert_eq!(
        cli.store
            .hook_owner(hook_id)
            .await
            .expect("owner")
            .as_deref(),
        Some("77"),
        "its rules will act as Grace"
    );
    assert!(
        registered
            .target
            .starts_with(&format!("{}/asana/webhooks/", app.address))
    );
    let listed = hooks(&app).await.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1.webhook_gid.as_deref(), Some("7777"));
}

#[tokio::test]
async fn list_and_delete_use_the_stored_token_and_forget_the_secret() {
    let app = hooked_app(&[]).await;
    let id = HookId::parse("h1").expect("id");
    hooks(&app)
        .await
        .registered(&id, "7777")
        .await
        .expect("record gid");
    Mock::given(method("GET"))
        .and(path("/api/1.0/webhooks"))
        .and(wiremock::matchers::query_param("workspace", "555"))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer access-token-1",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"gid": "7777", "target": "https://x/asana/webhooks/h1", "active": true}
        ]})))
        .expect(1)
        .mount(&app.asana)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api/1.0/webhooks/7777"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {}})))
        .expect(1)
        .mount(&app.asana)
        .await;
    let cli = cli_state(&app).await;
    let ada = cli.attacher.connections.default().await.expect("Ada");

    let listed = mcp_asana_linker::webhooks::admin::list(&cli, &ada, "555")
        .await
        .expect("list");
    mcp_asana_linker::webhooks::admin::delete(&cli, &ada, "7777")
        .await
        .expect("delete");

    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].gid, "7777");
    assert!(
        hooks(&app).await.list().await.expect("list").is_empty(),
        "the secret is forgotten"
    );
    let body = serde_json::to_vec(&json!({"events": []})).expect("json");
    let after = app
        .client
        .post(format!("{}/asana/webhooks/h1", app.address))
        .header("x-hook-signature", sign(SECRET, &body))
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        after.status(),
        401,
        "a deleted hook's deliveries are refused"
    );
}

#[tokio::test]
async fn a_context_comment_acts_as_its_author_and_one_by_someone_unconnected_is_skipped() {
    let app = hooked_app(&[]).await;
    app.mount_context("design_notes", "notes").await;
    let store = hooks_store(&app).await;
    store.save_consent(&grace()).await.expect("Grace connects");
    mount_story_by(&app, "5101", "/context design_notes", "77").await;
    mount_story_by(&app, "5102", "/context design_notes", "99").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer grace-access",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("9101")))
        .expect(1)
        .mount(&app.asana)
        .await;

    let by_grace = deliver(&app, &comment_event("5101"), None).await;
    let by_stranger = deliver(&app, &comment_event("5102"), None).await;
    until_posts(&app, 1).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&app, "GET", "/api/1.0/stories/5102").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the stranger's comment was never read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle().await;

    assert_eq!(
        (by_grace.status().as_u16(), by_stranger.status().as_u16()),
        (200, 200)
    );
    assert_eq!(
        count(&app, "POST", STORIES_PATH).await,
        1,
        "posted as Grace (the fake checks her token), nothing for user 99"
    );
}

//! The real binary: starting with no settings, refusing bad ones, `.env` layering, logs
//! without secrets, graceful SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_asana_linker::store::{DatabaseUrl, Sealer, Store};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::helpers::{
    ACCESS_TOKEN, ACME, CLIENT_SECRET, REFRESH_TOKEN, STORIES_PATH, Step, Stories, error_code,
    profile, stored_tokens, test_vars, token_answer,
};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-asana-linker");

/// A running binary, killed on drop.
pub struct Running {
    child: Child,
    pub address: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn terminate(&mut self) -> ExitStatus {
        self.send_sigterm();
        self.wait_exit(Duration::from_secs(10))
    }

    fn send_sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn command(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .envs(vars.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Starts the binary and waits for its "listening" log line.
pub fn start(dir: &Path, vars: &[(&str, &str)]) -> Running {
    let mut child = command(dir, vars).spawn().expect("binary starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let (address_tx, address_rx) = mpsc::channel();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && event["message"] == "listening"
                && let Some(addr) = event["addr"].as_str()
            {
                let _ = address_tx.send(addr.to_owned());
            }
            if let Ok(mut log) = sink.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    let address = address_rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| {
            panic!(
                "no listening line; log: {}",
                log.lock().map(|l| l.clone()).unwrap_or_default()
            )
        });
    Running {
        child,
        address: format!("http://{address}"),
        log,
    }
}

#[tokio::test]
async fn starts_with_no_settings_serves_health_and_explains_what_attach_needs() {
    let dir = tempfile::tempdir().expect("dir");
    let running = start(dir.path(), &[]);
    let client = reqwest::Client::new();

    let health = client
        .get(format!("{}/health", running.address))
        .send()
        .await
        .expect("sent");
    let attach = client
        .post(format!("{}/asana/attach-context", running.address))
        .json(&json!({"task_gid": "1", "context_name": "n"}))
        .send()
        .await
        .expect("sent");

    assert_eq!(health.status(), 200);
    assert_eq!(attach.status(), 503);
    let body: Value = attach.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "not_configured");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for setting in [
        "MCP_SERVER_URL",
        "ASANA_CLIENT_ID",
        "ASANA_CLIENT_SECRET",
        "ASANA_REDIRECT_URI",
    ] {
        assert!(
            message.contains(setting),
            "{setting} missing from {message}"
        );
    }
    assert!(
        running.log().contains("LINKER_API_KEY is not set"),
        "warning logged"
    );
}

#[test]
fn a_malformed_setting_stops_startup_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("PORT", "abc"),
        ("HOST", "example host"),
        ("MCP_SERVER_URL", "not a url"),
        ("ASANA_TOKEN_URL", "mailto:x@example.com"),
    ];
    for (name, value) in cases {
        let output = command(dir.path(), &[(name, value)])
            .output()
            .expect("binary runs");

        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
}

#[tokio::test]
async fn dotenv_in_the_working_directory_is_read_and_the_environment_wins() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join(".env"),
        "PORT=not-a-port\nLINKER_API_KEY=from-dotenv\nASANA_CLIENTID=misspelled\n",
    )
    .expect("write .env");
    // PORT=0 from the environment overrides the invalid .env value.
    let running = start(dir.path(), &[]);
    let client = reqwest::Client::new();

    let without_key = client
        .post(format!("{}/asana/attach-context", running.address))
        .json(&json!({"task_gid": "1", "context_name": "n"}))
        .send()
        .await
        .expect("sent");

    assert_eq!(without_key.status(), 401, "the .env API key is in force");
    assert_eq!(error_code(without_key).await, "unauthorized");
    assert!(
        running
            .log()
            .contains("ASANA_CLIENTID (did you mean ASANA_CLIENT_ID?)"),
        "a misspelled key is warned about: {}",
        running.log()
    );
}

#[tokio::test]
async fn a_503_is_one_warn_line_and_a_log_off_a_terminal_has_no_colour() {
    let dir = tempfile::tempdir().expect("dir");
    let running = start(dir.path(), &[]);
    let client = reqwest::Client::new();

    let attach = client
        .post(format!("{}/asana/attach-context", running.address))
        .header("x-request-id", "one-line-503")
        .json(&json!({"task_gid": "1", "context_name": "n"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(attach.status(), 503);
    let mut pretty = command(dir.path(), &[("LOG_FORMAT", "pretty")])
        .spawn()
        .expect("starts");
    let mut pretty_log = String::new();
    for line in BufReader::new(pretty.stderr.take().expect("piped")).lines() {
        let line = line.expect("a log line");
        pretty_log.push_str(&line);
        if line.contains("listening") {
            break;
        }
    }
    let _ = pretty.kill();
    let _ = pretty.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running.log().contains("one-line-503") {
        assert!(Instant::now() < deadline, "no line for the request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let log = running.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("one-line-503")).collect();
    assert_eq!(lines.len(), 1, "one line per request: {lines:?}");
    let line: Value = serde_json::from_str(lines[0]).expect("JSON line");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["code"], "not_configured", "{line}");
    assert!(!log.contains("\"level\":\"ERROR\""), "{log}");
    assert!(!log.contains('\u{1b}'), "no colour codes in JSON");
    assert!(pretty_log.contains("listening"), "{pretty_log}");
    assert!(
        !pretty_log.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {pretty_log:?}"
    );
}

/// A stateless MCP tool call is a request like any other: one log line, carrying the tool
/// and its outcome beside the status and the request id.
#[tokio::test]
async fn a_stateless_tool_call_is_one_log_line_with_its_tool_and_outcome() {
    let dir = tempfile::tempdir().expect("dir");
    let running = start(dir.path(), &[]);

    let answer: Value = reqwest::Client::new()
        .post(format!("{}/mcp", running.address))
        .header("x-request-id", "one-line-tool")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "list_contexts")
        .json(&crate::mcp_server::stateless_call(
            "list_contexts",
            json!({}),
            json!({}),
        ))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    // No context source is set: the tool says so.
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running.log().contains("one-line-tool") {
        assert!(Instant::now() < deadline, "no line for the request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let log = running.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("one-line-tool"))
        .collect();
    assert_eq!(lines.len(), 1, "one line per request: {lines:?}");
    let line: Value = serde_json::from_str(lines[0]).expect("JSON line");
    assert_eq!(line["message"], "response", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["tool"], "list_contexts", "{line}");
    assert_eq!(line["outcome"], "failed", "{line}");
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_with_exit_code_0() {
    let dir = tempfile::tempdir().expect("dir");
    let mut running = start(dir.path(), &[]);

    let status = running.terminate();

    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn sigterm_closes_idle_keep_alive_connections_at_once() {
    use std::io::{Read, Write};

    let dir = tempfile::tempdir().expect("dir");
    // Far longer than the test waits: an idle connection must not hold up the exit until it
    // times out.
    let mut running = start(dir.path(), &[("HTTP_HEADER_TIMEOUT_SECS", "60")]);
    let address = running.address.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut connection = std::net::TcpStream::connect(&address).expect("connects");
        connection
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("sent");
        let mut answer = [0u8; 4096];
        let read = connection.read(&mut answer).expect("answered");
        assert!(
            answer[..read].starts_with(b"HTTP/1.1 200"),
            "kept alive after a 200"
        );
        idle.push(connection);
    }

    running.send_sigterm();
    let status = running.wait_exit(Duration::from_secs(5));

    assert!(status.success(), "exit status {status}");
    for mut connection in idle {
        connection
            .set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout set");
        let mut rest = [0u8; 64];
        assert_eq!(
            connection.read(&mut rest).expect("closed, not timed out"),
            0,
            "the server closed the idle connection"
        );
    }
}

#[tokio::test]
async fn no_token_or_secret_reaches_the_log_even_at_debug() {
    let asana = MockServer::start().await;
    let context = MockServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let vars = test_vars(&asana, &context, &dir);
    mcp_asana_linker::asana::TokenFile::new(vars["TOKEN_STORE_PATH"].clone().into())
        .save(&stored_tokens(
            ACCESS_TOKEN,
            Some(REFRESH_TOKEN),
            Duration::ZERO,
        ))
        .await
        .expect("seed tokens");
    wiremock::Mock::given(wiremock::matchers::path("/-/oauth_token"))
        .respond_with(token_answer("access-token-2", Some("refresh-token-2")))
        .expect(1)
        .mount(&asana)
        .await;
    wiremock::Mock::given(wiremock::matchers::path("/contexts/n"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(json!({"context_text": "t"})),
        )
        .mount(&context)
        .await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/tasks/1/stories"))
        .respond_with(
            wiremock::ResponseTemplate::new(201).set_body_json(json!({"data": {"gid": "5"}})),
        )
        .expect(1)
        .mount(&asana)
        .await;
    let mut pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.push(("RUST_LOG", "debug"));
    pairs.push(("LINKER_API_KEY", "api-key-in-env"));
    let running = start(dir.path(), &pairs);

    let response = reqwest::Client::new()
        .post(format!("{}/asana/attach-context", running.address))
        .bearer_auth("api-key-in-env")
        .json(&json!({"task_gid": "1", "context_name": "n"}))
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), 201);
    // Lines reach stderr from the log thread a batch at a time: wait for this run's line.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running.log().contains("refreshing the Asana access token") && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = running.log();
    assert!(
        log.contains("refreshing the Asana access token"),
        "the run was logged: {log}"
    );
    for secret in [
        ACCESS_TOKEN,
        REFRESH_TOKEN,
        "access-token-2",
        "refresh-token-2",
        CLIENT_SECRET,
        "api-key-in-env",
    ] {
        assert!(!log.contains(secret), "{secret} appears in the log");
    }
}

/// A service on the binary with wiremock upstreams, the token file seeded `valid_for`.
struct Upstreams {
    asana: MockServer,
    context: MockServer,
    dir: tempfile::TempDir,
    vars: std::collections::HashMap<String, String>,
}

impl Upstreams {
    async fn new(valid_for: Duration) -> Self {
        let asana = MockServer::start().await;
        let context = MockServer::start().await;
        let dir = tempfile::tempdir().expect("dir");
        let vars = test_vars(&asana, &context, &dir);
        mcp_asana_linker::asana::TokenFile::new(vars["TOKEN_STORE_PATH"].clone().into())
            .save(&stored_tokens(ACCESS_TOKEN, Some(REFRESH_TOKEN), valid_for))
            .await
            .expect("seed tokens");
        wiremock::Mock::given(wiremock::matchers::path("/contexts/n"))
            .respond_with(
                wiremock::ResponseTemplate::new(200).set_body_json(json!({"context_text": "t"})),
            )
            .mount(&context)
            .await;
        // Asana says whose token it is.
        wiremock::Mock::given(wiremock::matchers::path("/api/1.0/users/me"))
            .respond_with(profile("42", "Ada Lovelace", "ada@example.com", &[ACME]))
            .mount(&asana)
            .await;
        Self {
            asana,
            context,
            dir,
            vars,
        }
    }

    fn start(&self, extra: &[(&str, &str)]) -> Running {
        let mut pairs: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.extend_from_slice(extra);
        start(self.dir.path(), &pairs)
    }

    fn token_path(&self) -> std::path::PathBuf {
        self.vars["TOKEN_STORE_PATH"].clone().into()
    }

    async fn stories_posted(&self) -> usize {
        self.asana
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("/stories"))
            .count()
    }
}

fn attach_in_background(
    running: &Running,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let url = format!("{}/asana/attach-context", running.address);
    tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&json!({"task_gid": "1", "context_name": "n"}))
            .send()
            .await
    })
}

#[tokio::test]
async fn kill_9_during_refreshes_never_loses_the_tokens_and_the_store_always_opens() {
    let upstreams = Upstreams::new(Duration::ZERO).await;
    // Tokens that expire at once, so every attach of every run refreshes.
    wiremock::Mock::given(wiremock::matchers::path("/-/oauth_token"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(json!({
                    "access_token": "access-rotated", "token_type": "bearer", "expires_in": 1,
                    "refresh_token": "refresh-rotated",
                    "data": {"gid": "42", "name": "Ada Lovelace", "email": "ada@example.com"}
                }))
                .set_delay(Duration::from_millis(5)),
        )
        .mount(&upstreams.asana)
        .await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/tasks/1/stories"))
        .respond_with(
            wiremock::ResponseTemplate::new(201).set_body_json(json!({"data": {"gid": "5"}})),
        )
        .mount(&upstreams.asana)
        .await;
    let url = DatabaseUrl::parse(&upstreams.vars["DATABASE_URL"]).expect("url");

    for run in 0..25u64 {
        let running = upstreams.start(&[]);
        let attaches: Vec<_> = (0..4).map(|_| attach_in_background(&running)).collect();
        // Kill moments spread from before the first request to after the last refresh,
        // doubling every third run (2 ms to 512 ms): dense where a fast machine refreshes, and
        // still among the refreshes of a machine slowed by everything else CI runs.
        tokio::time::sleep(Duration::from_millis(2 << (run / 3))).await;
        drop(running); // SIGKILL
        for attach in attaches {
            let _ = attach.await;
        }

        let store = Store::open(&url, Sealer::default())
            .await
            .expect("the store opens after kill -9");
        let loaded = store.default_connection().await;
        assert!(
            matches!(&loaded, Ok(Some(tokens)) if tokens.refresh_token.is_some()),
            "run {run}: the tokens are lost: {loaded:?}"
        );
    }
    let refreshes = upstreams
        .asana
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/-/oauth_token")
        .count();
    assert!(
        refreshes >= 5,
        "the kills landed among refreshes: {refreshes} refreshes"
    );
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_attach_finish_then_exits_0() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/tasks/1/stories"))
        .respond_with(
            wiremock::ResponseTemplate::new(201)
                .set_body_json(json!({"data": {"gid": "5"}}))
                .set_delay(Duration::from_millis(800)),
        )
        .expect(1)
        .mount(&upstreams.asana)
        .await;
    let mut running = upstreams.start(&[]);
    let attach = attach_in_background(&running);
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstreams.stories_posted().await == 0 {
        assert!(Instant::now() < deadline, "the attach never reached Asana");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    running.send_sigterm();
    let response = attach.await.expect("task").expect("answered");
    let status = running.wait_exit(Duration::from_secs(10));

    assert_eq!(response.status(), 201, "the in-flight attach finished");
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        upstreams
            .context
            .received_requests()
            .await
            .expect("recording on")
            .len(),
        1,
        "the context was fetched once"
    );
}

#[tokio::test]
async fn sigterm_exits_0_when_the_grace_period_runs_out() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/tasks/1/stories"))
        .respond_with(wiremock::ResponseTemplate::new(201).set_delay(Duration::from_secs(30)))
        .mount(&upstreams.asana)
        .await;
    let mut running =
        upstreams.start(&[("SHUTDOWN_GRACE_SECS", "1"), ("ASANA_TIMEOUT_SECS", "60")]);
    let _attach = attach_in_background(&running);
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstreams.stories_posted().await == 0 {
        assert!(Instant::now() < deadline, "the attach never reached Asana");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();

    running.send_sigterm();
    let status = running.wait_exit(Duration::from_secs(5));

    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "waited the grace period"
    );
}

#[tokio::test]
async fn sigterm_finishes_the_webhook_event_in_hand_and_keeps_the_rest_for_the_next_start() {
    use hmac::{Hmac, Mac};
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/stories/5001"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(json!({"data": {
                "text": "/context n", "resource_subtype": "comment_added", "target": {"gid": "1"},
                "created_by": {"gid": "42"}
            }})),
        )
        .mount(&upstreams.asana)
        .await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/tasks/1/stories"))
        .respond_with(
            wiremock::ResponseTemplate::new(201)
                .set_body_json(json!({"data": {"gid": "5"}}))
                .set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&upstreams.asana)
        .await;
    let store = Store::open_and_migrate(
        &DatabaseUrl::parse(&upstreams.vars["DATABASE_URL"]).expect("url"),
        Sealer::default(),
    )
    .await
    .expect("store");
    let hooks = mcp_asana_linker::webhooks::HookStore::load(
        store,
        &upstreams.token_path().with_file_name("webhooks.json"),
    )
    .await
    .expect("hooks");
    let id = mcp_asana_linker::webhooks::HookId::parse("h1").expect("id");
    hooks
        .announce(&id, "1", "https://x/asana/webhooks/h1")
        .await
        .expect("announce");
    let mut running = upstreams.start(&[]);
    let client = reqwest::Client::new();
    let url = format!("{}/asana/webhooks/h1", running.address);
    let handshake = client
        .post(&url)
        .header("x-hook-secret", "s")
        .send()
        .await
        .expect("sent");
    assert_eq!(handshake.status(), 200);
    let body = serde_json::to_vec(&json!({"events": [{
        "action": "added",
        "resource": {"gid": "5001", "resource_type": "story"},
        "parent": {"gid": "1", "resource_type": "task"}
    }]}))
    .expect("json");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s").expect("key");
    mac.update(&body);
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let delivered = client
        .post(&url)
        .header("x-hook-signature", signature)
        .body(body)
        .send()
        .await
        .expect("sent");
    running.send_sigterm();
    let status = running.wait_exit(Duration::from_secs(10));
    // A worker that had taken the event finished it; one still waiting is in the store.
    let before_restart = upstreams.stories_posted().await;
    if before_restart == 0 {
        let _restarted = upstreams.start(&[]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while upstreams.stories_posted().await == 0 {
            assert!(
                Instant::now() < deadline,
                "the stored event was never handled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    assert_eq!(delivered.status(), 200);
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        upstreams.stories_posted().await,
        1,
        "the event was handled once, before exit or after the restart (before: {before_restart})"
    );
}

/// Runs a one-shot command of the binary with the upstreams' settings.
fn run_command(
    upstreams: &Upstreams,
    args: &[&str],
    extra: &[(&str, &str)],
) -> std::process::Output {
    let mut pairs: Vec<(&str, &str)> = upstreams
        .vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.extend_from_slice(extra);
    command(upstreams.dir.path(), &pairs)
        .args(args)
        .stdout(Stdio::piped())
        .output()
        .expect("binary runs")
}

#[tokio::test]
async fn check_exit_codes_say_what_is_wrong() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    let empty = tempfile::tempdir().expect("dir");

    let healthy = run_command(&upstreams, &["check"], &[]);
    let unconfigured = command(empty.path(), &[])
        .arg("check")
        .stdout(Stdio::piped())
        .output()
        .expect("runs");
    let unreachable = run_command(
        &upstreams,
        &["check"],
        &[("MCP_SERVER_URL", "http://127.0.0.1:9")],
    );
    let malformed = run_command(&upstreams, &["check"], &[("PORT", "x")]);

    assert_eq!(
        healthy.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&healthy.stdout)
    );
    assert!(String::from_utf8_lossy(&healthy.stdout).contains("connected as Ada Lovelace"));
    assert!(
        String::from_utf8_lossy(&healthy.stdout)
            .contains("✓ connections: 1 healthy, 0 expired, 0 revoked")
    );
    assert_eq!(unconfigured.status.code(), Some(3));
    assert_eq!(unreachable.status.code(), Some(5));
    assert_eq!(malformed.status.code(), Some(2));
    let unconfigured = String::from_utf8_lossy(&unconfigured.stdout).into_owned();
    assert!(
        unconfigured.contains("✗ settings") && unconfigured.contains("✗ Asana token"),
        "every check is reported, not only the first failure: {unconfigured}"
    );
    assert!(
        unconfigured.contains("mcp-asana-linker authorize"),
        "{unconfigured}"
    );
    let unreachable = String::from_utf8_lossy(&unreachable.stdout).into_owned();
    assert!(unreachable.contains("✓ Asana: connected"), "{unreachable}");
}

#[tokio::test]
async fn auto_against_a_rest_server_keeps_rmcp_out_of_the_log() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;

    let checked = run_command(
        &upstreams,
        &["check"],
        &[("MCP_PROTOCOL", "auto"), ("RUST_LOG", "debug")],
    );
    let refused = run_command(
        &upstreams,
        &["check"],
        &[
            ("MCP_PROTOCOL", "auto"),
            ("MCP_SERVER_URL", "http://127.0.0.1:9"),
        ],
    );

    assert_eq!(checked.status.code(), Some(0));
    for output in [&checked, &refused] {
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(!log.contains("rmcp"), "{log}");
        assert!(!log.contains("\"level\":\"ERROR\""), "{log}");
    }
}

#[tokio::test]
async fn attach_errors_name_the_flags_and_print_the_cause() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(json!({"context_text": "t"})),
        )
        .mount(&upstreams.context)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(400)
                .set_body_json(json!({"errors": [{"message": "html_text: XML is invalid"}]})),
        )
        .mount(&upstreams.asana)
        .await;

    let bad_task = run_command(
        &upstreams,
        &["attach", "--task", "abc", "--context", "n"],
        &[],
    );
    let refused = run_command(
        &upstreams,
        &["attach", "--task", "1", "--context", "n"],
        &[],
    );

    let bad_task = String::from_utf8_lossy(&bad_task.stderr).into_owned();
    assert!(bad_task.contains("--task"), "{bad_task}");
    assert!(!bad_task.contains("task_gid"), "{bad_task}");
    let refused = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        refused.contains("XML is invalid"),
        "the cause is printed: {refused}"
    );
}

#[tokio::test]
async fn check_without_a_token_exits_4() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    std::fs::remove_file(upstreams.token_path()).expect("remove tokens");

    let output = run_command(&upstreams, &["check"], &[]);

    assert_eq!(output.status.code(), Some(4));
}

#[tokio::test]
async fn a_missing_or_wrong_store_key_stops_startup_and_keeps_the_tokens() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/tasks/1/stories"))
        .respond_with(
            wiremock::ResponseTemplate::new(201).set_body_json(json!({"data": {"gid": "5"}})),
        )
        .expect(1)
        .mount(&upstreams.asana)
        .await;
    let key = "11".repeat(32);
    let other = "22".repeat(32);
    // The first start imports the token file and seals it.
    drop(upstreams.start(&[("STORE_KEY", &key)]));
    // The database file and its write-ahead log, where the latest rows may still be.
    let mut database = Vec::new();
    for name in ["linker.db", "linker.db-wal"] {
        database.extend(
            std::fs::read(upstreams.dir.path().join("data").join(name)).unwrap_or_default(),
        );
    }
    let stored = String::from_utf8_lossy(&database).contains("sealed1:");
    let sealed = stored && !String::from_utf8_lossy(&database).contains(ACCESS_TOKEN);

    let missing = run_command(&upstreams, &["serve"], &[]);
    let wrong = run_command(&upstreams, &["serve"], &[("STORE_KEY", &other)]);
    let running = upstreams.start(&[("STORE_KEY", &key)]);
    let attached = reqwest::Client::new()
        .post(format!("{}/asana/attach-context", running.address))
        .json(&json!({"task_gid": "1", "context_name": "n"}))
        .send()
        .await
        .expect("sent");

    assert!(sealed, "no token in the clear in the database");
    for refused in [missing, wrong] {
        let said = String::from_utf8_lossy(&refused.stderr).into_owned();
        assert!(!refused.status.success(), "{said}");
        assert!(said.contains("STORE_KEY"), "{said}");
        assert!(
            !said.contains("refresh"),
            "never mistaken for a refused refresh: {said}"
        );
    }
    assert_eq!(attached.status(), 201, "the tokens are still there");
}

#[tokio::test]
async fn a_running_store_is_backed_up_and_its_tokens_exported_for_a_rollback() {
    use std::os::unix::fs::PermissionsExt;
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    let running = upstreams.start(&[]);
    let token_file = upstreams.token_path();
    assert!(!token_file.exists(), "imported at start");
    let copy = upstreams.dir.path().join("backup.db");

    let backup = run_command(
        &upstreams,
        &["store", "backup", "--to", &copy.display().to_string()],
        &[],
    );
    let again = run_command(
        &upstreams,
        &["store", "backup", "--to", &copy.display().to_string()],
        &[],
    );
    drop(running);
    let export = run_command(&upstreams, &["store", "export"], &[]);

    assert_eq!(backup.status.code(), Some(0), "{backup:?}");
    assert_eq!(
        again.status.code(),
        Some(7),
        "an existing file is never overwritten"
    );
    let mode = std::fs::metadata(&copy).expect("copy").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let url = DatabaseUrl::parse(&format!("sqlite://{}", copy.display())).expect("url");
    let copied = Store::open(&url, Sealer::default())
        .await
        .expect("the copy opens");
    let tokens = copied
        .default_connection()
        .await
        .expect("read")
        .expect("a connection");
    assert_eq!(tokens.user.gid, "42");
    assert_eq!(export.status.code(), Some(0), "{export:?}");
    let exported = mcp_asana_linker::asana::TokenFile::new(token_file)
        .load()
        .await
        .expect("the old format loads")
        .expect("tokens");
    assert_eq!(
        exported.refresh_token.map(|t| t.expose_secret().to_owned()),
        Some(REFRESH_TOKEN.to_owned())
    );
}

#[tokio::test]
async fn requests_before_the_first_scrape_are_counted() {
    let empty = tempfile::tempdir().expect("dir");
    let running = start(empty.path(), &[]);
    let client = reqwest::Client::new();

    let health = client
        .get(format!("{}/health", running.address))
        .send()
        .await
        .expect("sent");
    let metrics = client
        .get(format!("{}/metrics", running.address))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");

    assert_eq!(health.status(), 200);
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("linker_http_requests_total")
                && line.contains("route=\"/health\"")
                && line.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn ready_and_metrics_count_connections_by_state_without_naming_anyone() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    let running = upstreams.start(&[]);
    let client = reqwest::Client::new();
    let get = |route: &str| client.get(format!("{}{route}", running.address)).send();

    let ready: Value = get("/ready")
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    let metrics = get("/metrics")
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");

    assert_eq!(
        ready["connections"],
        json!({"healthy": 1, "expired": 0, "revoked": 0})
    );
    for (state, count) in [("healthy", 1), ("expired", 0), ("revoked", 0)] {
        let line = format!("linker_connections{{state=\"{state}\"}} {count}");
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    assert!(
        !metrics.contains("Ada") && !metrics.contains("42\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_upgrade_imports_the_old_token_file_and_key_journals_then_removes_them() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/tasks/1/stories"))
        .respond_with(
            wiremock::ResponseTemplate::new(201).set_body_json(json!({"data": {"gid": "5"}})),
        )
        .expect(1)
        .mount(&upstreams.asana)
        .await;
    let token_file = upstreams.token_path();
    let journal = token_file.with_file_name("idempotency_keys.jsonl");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // As the file-based version wrote it: a recent key, an expired one, a torn last line.
    let recent = json!({"key": "order-1", "fingerprint": "f", "at": now,
        "outcome": {"status": 201, "body": {"story_gid": "77"}}});
    let expired = json!({"key": "order-2", "fingerprint": "f", "at": 1,
        "outcome": {"status": 201, "body": null}});
    std::fs::write(&journal, format!("{recent}\n{expired}\n{{\"key\":\"torn"))
        .expect("write the journal");
    // And its webhook journal: an event handled, and a comment of its own.
    let seen = token_file.with_file_name("webhook_seen.jsonl");
    let event = json!({"key": "event:story-added:5004", "fingerprint": "", "at": now,
        "outcome": {"status": 200, "body": null}});
    let own = json!({"key": "story:9", "fingerprint": "", "at": now,
        "outcome": {"status": 200, "body": null}});
    std::fs::write(&seen, format!("{event}\n{own}\n")).expect("write the webhook journal");

    let running = upstreams.start(&[]);
    let client = reqwest::Client::new();
    let attach = |key: &'static str| {
        client
            .post(format!("{}/asana/attach-context", running.address))
            .header("idempotency-key", key)
            .json(&json!({"task_gid": "1", "context_name": "n"}))
            .send()
    };
    let imported = attach("order-1").await.expect("sent");
    let not_imported = attach("order-2").await.expect("sent");
    drop(running);
    let checked = run_command(&upstreams, &["store", "check"], &[]);

    assert_eq!(
        error_code(imported).await,
        "idempotency_key_reused",
        "the imported key holds"
    );
    assert_eq!(
        not_imported.status(),
        201,
        "the expired key was not imported"
    );
    assert!(!token_file.exists(), "no plaintext token file stays behind");
    assert!(!journal.exists(), "the journal is removed once imported");
    assert!(
        !seen.exists(),
        "the webhook journal is removed once imported"
    );
    let report = String::from_utf8_lossy(&checked.stdout);
    assert_eq!(checked.status.code(), Some(0), "{report}");
    assert!(
        report.contains("connections 1, idempotency_keys 2, seen_events 1"),
        "{report}"
    );
    assert!(report.contains("webhook_jobs 1"), "{report}");
}

#[tokio::test]
async fn attach_one_shot_posts_and_prints_where() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/tasks/1/stories"))
        .respond_with(
            wiremock::ResponseTemplate::new(201).set_body_json(json!({"data": {"gid": "5"}})),
        )
        .expect(1)
        .mount(&upstreams.asana)
        .await;

    let output = run_command(
        &upstreams,
        &["attach", "--task", "1", "--context", "n"],
        &[],
    );

    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("posted story 5"));
    let store = Store::open(
        &DatabaseUrl::parse(&upstreams.vars["DATABASE_URL"]).expect("url"),
        Sealer::default(),
    )
    .await
    .expect("store");
    let posted = store
        .latest_posted(crate::helpers::USER_GID, 10)
        .await
        .expect("read");
    assert_eq!(
        posted
            .iter()
            .map(|p| (p.story_gid.as_str(), p.task_gid.as_str()))
            .collect::<Vec<_>>(),
        [("5", "1")],
        "the comment is recorded as the linker's own"
    );
}

#[test]
fn version_is_printed() {
    let output = Command::new(BIN).arg("--version").output().expect("runs");
    assert!(String::from_utf8_lossy(&output.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn authorize_prints_the_consent_url_and_exits_once_connected() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    std::fs::remove_file(upstreams.token_path()).expect("no tokens yet");
    wiremock::Mock::given(wiremock::matchers::path("/-/oauth_token"))
        .respond_with(token_answer("fresh-access", Some("fresh-refresh")))
        .expect(1)
        .mount(&upstreams.asana)
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let redirect = format!("http://127.0.0.1:{port}/asana/oauth/callback");
    let mut pairs: Vec<(&str, &str)> = upstreams
        .vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.extend_from_slice(&[
        ("PORT", port.as_str()),
        ("ASANA_REDIRECT_URI", redirect.as_str()),
    ]);
    let mut child = command(upstreams.dir.path(), &pairs)
        .arg("authorize")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let (url_tx, url_rx) = mpsc::channel();
    let printed = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&printed);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.trim().strip_prefix("http") {
                let _ = url_tx.send(format!("http{url}"));
            }
            if let Ok(mut all) = sink.lock() {
                all.push_str(&line);
                all.push('\n');
            }
        }
    });
    let url = url_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a consent URL is printed");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(10);
    let consent = loop {
        match client.get(&url).send().await {
            Ok(response) => break response,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => panic!("the service did not come up: {error}"),
        }
    };
    let location =
        url::Url::parse(consent.headers()["location"].to_str().expect("ascii")).expect("url");
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");

    let callback = client
        .get(format!("{redirect}?code=the-code&state={state}"))
        .header("cookie", crate::helpers::consent_cookie(&consent))
        .send()
        .await
        .expect("callback");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "authorize did not exit after the consent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    assert_eq!(
        url,
        format!("http://127.0.0.1:{port}/asana/oauth/authorize")
    );
    assert_eq!(callback.status(), 303, "on to the home page");
    assert!(status.success(), "exit status {status}");
    reader.join().expect("stdout read to its end");
    assert!(
        printed
            .lock()
            .map(|p| p.contains("Connected to Asana as Ada Lovelace"))
            .unwrap_or(false)
    );
}

#[tokio::test]
async fn a_webhook_event_accepted_before_a_kill_9_mid_post_is_finished_after_the_restart_once() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/stories/5003"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(json!({"data": {
                "text": "/context n", "resource_subtype": "comment_added",
                "target": {"gid": "1234567890"}, "created_by": {"gid": "42"}
            }})),
        )
        .mount(&upstreams.asana)
        .await;
    let stories = Stories::default();
    // Asana takes a second to create the comment; the server dies before it answers.
    stories
        .mount(
            &upstreams.asana,
            vec![Step::CreateSlowly(Duration::from_secs(1)), Step::Create],
        )
        .await;
    let running = upstreams.start(&[]);
    crate::webhooks::announce(&upstreams.vars, "h3").await;
    let client = reqwest::Client::new();
    let hook_url = |running: &Running| format!("{}/asana/webhooks/h3", running.address);
    let handshake = client
        .post(hook_url(&running))
        .header("x-hook-secret", "s")
        .send()
        .await
        .expect("sent");
    let body = serde_json::to_vec(&json!({"events": [{
        "action": "added",
        "resource": {"gid": "5003", "resource_type": "story"},
        "parent": {"gid": "1234567890", "resource_type": "task"}
    }]}))
    .expect("json");
    let deliver = |running: &Running| {
        client
            .post(hook_url(running))
            .header("x-hook-signature", crate::webhooks::sign("s", &body))
            .body(body.clone())
            .send()
    };

    let accepted = deliver(&running).await.expect("sent");
    let deadline = Instant::now() + Duration::from_secs(5);
    while stories.count() == 0 {
        assert!(Instant::now() < deadline, "the server never posted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(running); // SIGKILL, its 200 already given to Asana
    let running = upstreams.start(&[]);
    // The job left in the store is taken up once what the dead server sent has had time to
    // arrive (ASANA_TIMEOUT_SECS), and looks for the comment first.
    crate::helpers::until_requested(
        &upstreams.asana,
        "GET",
        STORIES_PATH,
        Duration::from_secs(10),
        "the job was not taken up after the restart",
    )
    .await;
    let redelivered = deliver(&running).await.expect("sent");
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(handshake.status(), 200);
    assert_eq!(
        (accepted.status().as_u16(), redelivered.status().as_u16()),
        (200, 200)
    );
    assert_eq!(
        stories.count(),
        1,
        "one comment, after a kill and a redelivery"
    );
}

#[tokio::test]
async fn connections_and_keys_are_managed_from_the_command_line() {
    let upstreams = Upstreams::new(Duration::from_secs(3600)).await;
    wiremock::Mock::given(wiremock::matchers::path("/api/1.0/tasks/1/stories"))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer grace-access",
        ))
        .respond_with(
            wiremock::ResponseTemplate::new(201).set_body_json(json!({"data": {"gid": "6"}})),
        )
        .expect(1)
        .mount(&upstreams.asana)
        .await;
    let stdout =
        |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).into_owned();
    // The first command imports Ada's token file; then Grace consents (as the server would
    // store her consent).
    let listed_alone = run_command(&upstreams, &["connections", "list"], &[]);
    let store = Store::open(
        &DatabaseUrl::parse(&upstreams.vars["DATABASE_URL"]).expect("url"),
        Sealer::default(),
    )
    .await
    .expect("store");
    let mut grace = stored_tokens(
        "grace-access",
        Some("grace-refresh"),
        Duration::from_secs(3600),
    );
    grace.user = mcp_asana_linker::asana::AsanaUser {
        gid: "77".into(),
        name: "Grace Hopper".into(),
        email: Some("grace@example.com".into()),
    };
    store.save_consent(&grace).await.expect("consent");

    let key = run_command(
        &upstreams,
        &["keys", "create", "--as", "grace@example.com"],
        &[],
    );
    let key_text = stdout(&key).trim().to_owned();
    assert!(
        key_text.starts_with("mal_") && key_text.len() == 44,
        "{key_text}"
    );
    let owner = mcp_asana_linker::PersonalKeys::new(store.clone())
        .owner(&secrecy::SecretString::from(key_text.clone()))
        .await
        .expect("check");
    assert_eq!(
        owner.as_deref(),
        Some("77"),
        "the printed key acts as Grace"
    );

    let unknown = run_command(&upstreams, &["keys", "create", "--as", "nobody"], &[]);
    let marked = run_command(&upstreams, &["connections", "default", "77"], &[]);
    let listed = run_command(&upstreams, &["connections", "list"], &[]);
    let attached = run_command(
        &upstreams,
        &["attach", "--task", "1", "--context", "n", "--as", "77"],
        &[],
    );
    let revoked = run_command(
        &upstreams,
        &["connections", "revoke", "grace@example.com"],
        &[],
    );
    let after = run_command(&upstreams, &["connections", "list"], &[]);

    assert!(
        stdout(&listed_alone).contains("42\tAda Lovelace\tada@example.com\thealthy\t-\tdefault"),
        "{}",
        stdout(&listed_alone)
    );
    assert_eq!(unknown.status.code(), Some(4));
    assert_eq!(marked.status.code(), Some(0), "{}", stdout(&marked));
    let listed = stdout(&listed);
    assert!(
        listed.contains("77\tGrace Hopper\tgrace@example.com\thealthy\t"),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("77\t") && l.ends_with("\tdefault")),
        "{listed}"
    );
    assert!(
        !listed
            .lines()
            .any(|l| l.starts_with("42\t") && l.ends_with("\tdefault")),
        "{listed}"
    );
    assert_eq!(
        attached.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&attached.stderr)
    );
    assert_eq!(revoked.status.code(), Some(0));
    let after = stdout(&after);
    assert!(
        after.contains("77\tGrace Hopper\tgrace@example.com\trevoked\t"),
        "{after}"
    );
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("42\t") && l.ends_with("\tdefault")),
        "the oldest left is the default again: {after}"
    );
    let owner = mcp_asana_linker::PersonalKeys::new(store)
        .owner(&secrecy::SecretString::from(key_text))
        .await
        .expect("check");
    assert_eq!(owner, None, "the key died with the connection");
}

#[tokio::test]
async fn outbound_requests_go_through_the_proxy_the_environment_names() {
    let proxy = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/contexts/design_notes"))
        .and(wiremock::matchers::header("host", "context.invalid"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(json!({"context_text": "# Notes\nvia the proxy"})),
        )
        .expect(1)
        .mount(&proxy)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    // The context server's host does not resolve: only the proxy can reach it.
    let running = start(
        dir.path(),
        &[
            ("MCP_SERVER_URL", "http://context.invalid"),
            ("MCP_PROTOCOL", "rest"),
            ("HTTP_PROXY", &proxy.uri()),
        ],
    );

    let preview = reqwest::Client::new()
        .post(format!("{}/asana/preview", running.address))
        .json(&json!({"task_gid": "1", "context_name": "design_notes"}))
        .send()
        .await
        .expect("sent");

    assert_eq!(preview.status(), 200);
    let body: Value = preview.json().await.expect("JSON");
    assert!(
        body["parts"][0]["content"]
            .as_str()
            .is_some_and(|html| html.contains("via the proxy")),
        "{body}"
    );
}

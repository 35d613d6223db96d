//! The real binary: starting with no settings, refusing bad ones, `.env` layering, logs
//! without secrets, graceful SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::MockServer;

use crate::helpers::{
    ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN, error_code, stored_tokens, test_vars, token_answer,
};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-asana-linker");

/// A running binary, killed on drop.
struct Running {
    child: Child,
    address: String,
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

    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit after SIGTERM");
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
fn start(dir: &Path, vars: &[(&str, &str)]) -> Running {
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
        "PORT=not-a-port\nLINKER_API_KEY=from-dotenv\n",
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
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_with_exit_code_0() {
    let dir = tempfile::tempdir().expect("dir");
    let mut running = start(dir.path(), &[]);

    let status = running.terminate();

    assert!(status.success(), "exit status {status}");
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

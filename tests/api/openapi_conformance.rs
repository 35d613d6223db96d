//! `/openapi.json` tells the truth: schemathesis (from the test virtualenv, with a fixed
//! seed so a failure repeats) generates requests from it against the real router, with
//! Asana and the context server faked so that only the linker's own answers are judged.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{any, method};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{Seed, spawn_app_with, story};
use crate::mcp_fixture::{Era, McpFixture};

const KEY: &str = "conformance-key";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_the_document_does_not_say() {
    let python = std::env::var("LINKER_TEST_PYTHON")
        .expect("LINKER_TEST_PYTHON is not set: run the tests with scripts/test");
    let schemathesis = std::path::Path::new(&python)
        .with_file_name("schemathesis")
        .display()
        .to_string();
    // An MCP server, as in production: it lists its contexts and takes any name or URI.
    let fixture = McpFixture::start(Era::Modern);
    let url = fixture.url();
    let app = spawn_app_with(
        Seed::Tokens(Duration::from_secs(3600)),
        &[
            ("LINKER_API_KEY", KEY),
            ("MCP_SERVER_URL", url.as_str()),
            ("MCP_PROTOCOL", "mcp"),
        ],
    )
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("1")))
        .mount(&app.asana)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .mount(&app.asana)
        .await;
    let document = format!("{}/openapi.json", app.address);
    let report = tempfile::tempdir().expect("dir");

    let output = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .arg("--config-file")
            .arg(format!(
                "{}/tests/fixtures/schemathesis.toml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .args([
                "run",
                &document,
                "--checks",
                "all",
                "--seed",
                "1",
                "--max-examples",
                "25",
            ])
            .args(["--workers", "1", "--no-color"])
            .args(["-H", &format!("Authorization: Bearer {KEY}")])
            .arg("--report-dir")
            .arg(report.path())
            .output()
            .expect("schemathesis runs (installed by scripts/test)")
    })
    .await
    .expect("joined");

    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("passed"),
        "schemathesis ran operations: {printed}"
    );
}

//! Every request the Asana client builds, checked against Asana's OpenAPI definition
//! (`tests/fixtures/asana_oas.yaml.gz`) by `tests/fixtures/asana_contract.py` in the test
//! virtualenv (`LINKER_TEST_PYTHON`, set by `scripts/test`).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::AsanaClient;
use crate::domain::{CustomFieldGid, TaskGid};
use crate::render::CommentBody;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A plausible answer for any call: a list for listings, an object otherwise.
fn answer(request: &Request) -> ResponseTemplate {
    let path = request.url.path();
    let listing = request.method.as_str() == "GET"
        && (path.ends_with("/stories") || path.ends_with("/webhooks"));
    let data = if listing {
        json!([])
    } else {
        json!({"gid": "1", "name": "n", "email": null})
    };
    ResponseTemplate::new(200).set_body_json(json!({"data": data, "X-Hook-Secret": "s"}))
}

/// What the validator reads: method, path under the API base, query pairs, JSON body.
fn recorded(request: &Request) -> Value {
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    let body: Option<Value> = serde_json::from_slice(&request.body).ok();
    json!({
        "method": request.method.as_str(),
        "path": request.url.path().trim_start_matches("/api/1.0"),
        "query": query,
        "body": body,
    })
}

/// Runs the validator over `requests`: its exit status and what it printed.
fn validate(requests: &[Value]) -> (bool, String) {
    let python = std::env::var("LINKER_TEST_PYTHON")
        .expect("LINKER_TEST_PYTHON is not set: run the tests with scripts/test");
    let mut child = Command::new(python)
        .arg(format!("{ROOT}/tests/fixtures/asana_contract.py"))
        .arg(format!("{ROOT}/tests/fixtures/asana_oas.yaml.gz"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the validator starts");
    let input = serde_json::to_vec(requests).expect("JSON");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("requests written");
    let output = child.wait_with_output().expect("the validator ends");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn every_request_the_client_builds_is_allowed_by_asanas_definition() {
    let asana = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(answer)
        .mount(&asana)
        .await;
    let base = url::Url::parse(&format!("{}/api/1.0", asana.uri())).expect("url");
    let client = AsanaClient::new(
        reqwest::Client::new(),
        &base,
        Duration::from_secs(5),
        4,
        Duration::from_secs(5),
    );
    let token = SecretString::from("t");
    let task = TaskGid::parse("1234567890").expect("gid");
    let field = CustomFieldGid::parse("555").expect("gid");
    let html = CommentBody::Html("<body>x</body>".into());
    let text = CommentBody::Text("x".into());

    client
        .create_story(&token, &task, &html, true)
        .await
        .expect("html comment");
    client
        .create_story(&token, &task, &text, false)
        .await
        .expect("text comment");
    client
        .stories_page(&token, &task, None)
        .await
        .expect("stories");
    client
        .stories_page(&token, &task, Some("eyJ0"))
        .await
        .expect("next page");
    client
        .set_text_field(&token, &task, &field, "x")
        .await
        .expect("field");
    client.story(&token, "42").await.expect("story");
    let filters = json!([{"resource_type": "story", "action": "added"}]);
    client
        .create_webhook(&token, "123", "https://x.example/asana/webhooks/h", filters)
        .await
        .expect("webhook");
    client.list_webhooks(&token, "99").await.expect("webhooks");
    client.delete_webhook(&token, "77").await.expect("delete");
    client.me(&token).await.expect("me");
    let requests: Vec<Value> = asana
        .received_requests()
        .await
        .expect("recording on")
        .iter()
        .map(recorded)
        .collect();

    assert_eq!(requests.len(), 10, "every call was made");
    let (valid, report) = validate(&requests);
    assert!(valid, "{report}");
}

#[test]
fn the_validator_refuses_what_the_definition_does_not_allow() {
    let refused = [
        json!({"method": "PUT", "path": "/tasks/1", "query": [["opt_fields", "gid"]],
               "body": {"data": {"custom_fields": {"5": "x"}}}}),
        json!({"method": "POST", "path": "/tasks/1/stories", "query": [],
               "body": {"data": {"html_text": "<body/>", "colour": "red"}}}),
        json!({"method": "GET", "path": "/tasks/1/stories", "query": [["limit", "500"]], "body": null}),
        json!({"method": "PATCH", "path": "/tasks/1/stories", "query": [], "body": null}),
    ];
    for request in refused {
        let (valid, report) = validate(std::slice::from_ref(&request));
        assert!(!valid, "{request} passed: {report}");
    }
}

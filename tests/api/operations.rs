//! Probes, metrics, request ids and the OpenAPI document.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::helpers::{
    Seed, TestApp, drop_postgres, fresh_postgres_url, spawn_app, spawn_app_with, token_answer,
};

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn a_fresh_unconnected_service_is_ready_and_says_it_is_not_connected() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;

    let response = get(&app, "/ready").await;

    assert_eq!(
        response.status(),
        200,
        "the consent must be routable to a fresh pod"
    );
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["ready"], true);
    assert_eq!(body["connected"], false);
    assert!(
        body["attention"]
            .to_string()
            .contains("no Asana account is connected"),
        "{body}"
    );
    let metrics = get(&app, "/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("linker_asana_connected 0"),
        "not connected at a glance in metrics"
    );
}

#[tokio::test]
async fn a_refused_grant_shows_as_not_connected_and_revoked_without_making_the_service_unready() {
    let app = spawn_app_with(Seed::Tokens(Duration::ZERO), &[]).await;
    app.expect_refresh(
        ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
        1,
    )
    .await;
    let before: Value = get(&app, "/ready").await.json().await.expect("JSON");
    assert_eq!(
        before["connected"], true,
        "an expired token with a refresh token is refreshable: {before}"
    );

    app.mount_context("n", "t").await;
    let refused = app
        .post_attach(&json!({"task_gid": "1", "context_name": "n"}))
        .await;
    assert_eq!(refused.status(), 503);
    let after = get(&app, "/ready").await;

    assert_eq!(after.status(), 200);
    let after: Value = after.json().await.expect("JSON");
    assert_eq!(
        (after["ready"].clone(), after["connected"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        before["connections"],
        json!({"healthy": 0, "expired": 1, "revoked": 0})
    );
    assert_eq!(
        after["connections"],
        json!({"healthy": 0, "expired": 0, "revoked": 1})
    );
}

#[tokio::test]
async fn an_unreachable_context_server_is_reported_without_making_the_service_unready() {
    let app = spawn_app_with(
        Seed::Tokens(Duration::from_secs(3600)),
        &[("MCP_SERVER_URL", "http://127.0.0.1:9")],
    )
    .await;

    let response = get(&app, "/ready").await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["context_server"], "unreachable");
    assert!(
        body["attention"]
            .to_string()
            .contains("context server unreachable"),
        "{body}"
    );
}

#[tokio::test]
async fn a_store_that_stops_answering_makes_the_service_unready() {
    let database = fresh_postgres_url().await;
    let app = spawn_app_with(
        Seed::Tokens(Duration::from_secs(3600)),
        &[("DATABASE_URL", &database)],
    )
    .await;
    let before = get(&app, "/ready").await.status();

    drop_postgres(&database).await;
    let response = get(&app, "/ready").await;

    assert_eq!(before, 200, "ready on PostgreSQL");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON");
    let reasons = body["reasons"].to_string();
    assert!(
        reasons.contains("store postgres://linker@127.0.0.1"),
        "{body}"
    );
    assert!(
        reasons.contains("unusable") || reasons.contains("did not answer"),
        "{body}"
    );
}

/// The value of a counter line in Prometheus text, summed over lines matching all `labels`.
fn counter(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_move_as_requests_are_made() {
    let app = spawn_app_with(Seed::Tokens(Duration::ZERO), &[]).await;
    app.mount_context("n", "t").await;
    app.expect_refresh(token_answer("access-token-2", None), 1)
        .await;
    app.expect_story("1", 2).await;
    let before = get(&app, "/metrics").await.text().await.expect("text");

    for _ in 0..2 {
        let response = app
            .post_attach(&json!({"task_gid": "1234567890", "context_name": "n"}))
            .await;
        assert_eq!(response.status(), 201);
    }
    let after = get(&app, "/metrics").await;

    assert!(
        after.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    let after = after.text().await.expect("text");
    let moved = |name: &str, labels: &[&str]| {
        counter(&after, name, labels) - counter(&before, name, labels)
    };
    let route = ["route=\"/asana/attach-context\"", "status=\"201\""];
    assert!(
        moved("linker_http_requests_total", &route) >= 2.0,
        "{after}"
    );
    assert!(
        moved(
            "linker_upstream_calls_total",
            &["target=\"asana\"", "outcome=\"ok\""]
        ) >= 2.0
    );
    assert!(moved("linker_upstream_calls_total", &["target=\"context\""]) >= 2.0);
    assert!(moved("linker_token_refreshes_total", &["outcome=\"ok\""]) >= 1.0);
    assert!(moved("linker_stories_posted_total", &[]) >= 2.0);
    assert!(
        after.contains("linker_http_request_duration_seconds_bucket"),
        "latency histogram"
    );
}

#[tokio::test]
async fn metrics_can_require_the_api_key() {
    let app = spawn_app_with(
        Seed::Nothing,
        &[("METRICS_PUBLIC", "false"), ("LINKER_API_KEY", "k")],
    )
    .await;

    let without = get(&app, "/metrics").await;
    let with = app
        .client
        .get(format!("{}/metrics", app.address))
        .bearer_auth("k")
        .send()
        .await
        .expect("sent");

    assert_eq!(without.status(), 401);
    assert_eq!(with.status(), 200);
}

#[tokio::test]
async fn request_ids_are_kept_or_made_returned_and_put_in_error_bodies() {
    let app = spawn_app().await;

    let given = app
        .client
        .get(format!("{}/no/such/route", app.address))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .expect("sent");
    let made = get(&app, "/health").await;

    assert_eq!(given.headers()["x-request-id"], "trace-abc-123");
    let body: Value = given.json().await.expect("JSON");
    assert_eq!(body["error"]["request_id"], "trace-abc-123");
    let made_id = made.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(made_id.len(), 32);
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_every_listed_route_exists() {
    let app = spawn_app().await;

    let response = get(&app, "/openapi.json").await;

    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.expect("JSON");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    let listed: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|methods| methods.keys())
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/"),
        ("POST", "/keys/new"),
        ("POST", "/disconnect"),
        ("GET", "/assets/linker.css"),
        ("GET", "/assets/copy.js"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/asana/oauth/authorize"),
        ("GET", "/asana/oauth/callback"),
        ("POST", "/asana/attach-context"),
        ("POST", "/asana/preview"),
        ("GET", "/contexts"),
        ("POST", "/asana/webhooks/{hook_id}"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(listed, expected);
    for (method, path) in &listed {
        let url = format!("{}{}", app.address, path.replace("{hook_id}", "h1"));
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = app
            .client
            .request(method.clone(), url)
            .send()
            .await
            .expect("sent");
        let body = response.text().await.unwrap_or_default();
        assert!(
            !body.contains("\"not_found\"") && !body.contains("\"method_not_allowed\""),
            "{method} {path} is documented but not routed: {body}"
        );
    }
}

/// Reads until the server closes the connection; `None` if it is still open after `wait`.
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    tokio::time::timeout(wait, stream.read_to_end(&mut seen))
        .await
        .ok()
        .map(|_| seen)
}

#[tokio::test]
async fn slow_headers_silent_and_idle_connections_are_closed_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(
        Seed::Tokens(Duration::from_secs(3600)),
        &[("HTTP_HEADER_TIMEOUT_SECS", "1")],
    )
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let connect = || tokio::net::TcpStream::connect(address.clone());

    let mut half = connect().await.expect("connect");
    half.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    let mut silent = connect().await.expect("connect");
    let mut idle = connect().await.expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");

    for (stream, what) in [
        (&mut half, "half a header"),
        (&mut silent, "nothing sent"),
        (&mut idle, "idle after a response"),
    ] {
        let seen = closed_within(stream, Duration::from_secs(4)).await;
        assert!(seen.is_some(), "{what}: still open");
        if what == "idle after a response" {
            let seen = String::from_utf8_lossy(seen.as_deref().unwrap_or_default()).into_owned();
            assert!(seen.starts_with("HTTP/1.1 200"), "{what}: {seen}");
        }
    }
}

#[tokio::test]
async fn every_metric_has_help_the_listed_counters_start_at_zero_and_outcomes_share_one_vocabulary()
{
    let app = spawn_app().await;
    app.mount_context("n", "t").await;
    app.expect_story("1", 1).await;
    app.post_attach(&json!({"task_gid": "1234567890", "context_name": "n"}))
        .await;

    let text = get(&app, "/metrics").await.text().await.expect("text");

    let names: BTreeSet<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n))
        })
        .collect();
    for name in &names {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
    }
    for listed in [
        "linker_retries_total",
        "linker_asana_rate_limited_total",
        "linker_stories_posted_total",
        "linker_log_lines_dropped_total",
        "linker_token_refreshes_total{outcome=\"refused\"}",
        "linker_upstream_calls_total{target=\"mcp\",outcome=\"timeout\"}",
    ] {
        assert!(
            text.contains(listed),
            "{listed} is not present from the start"
        );
    }
    let vocabulary = [
        "ok",
        "refused",
        "rate_limited",
        "failed",
        "timeout",
        "unreachable",
    ];
    for outcome in text.split("outcome=\"").skip(1) {
        let value = outcome.split('"').next().unwrap_or_default();
        assert!(
            vocabulary.contains(&value),
            "outcome {value:?} is outside the vocabulary"
        );
    }
}

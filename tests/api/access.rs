//! Who may attach: API key holders, or loopback clients when no key is set.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use mcp_asana_linker::{AppState, Settings, app};
use serde_json::json;
use tower::ServiceExt;

use crate::helpers::{Seed, error_code, spawn_app_with, test_vars};

const KEY: &str = "s3cret-api-key";

#[tokio::test]
async fn with_an_api_key_only_the_right_bearer_gets_through() {
    let app = spawn_app_with(
        Seed::Tokens(std::time::Duration::from_secs(3600)),
        &[("LINKER_API_KEY", KEY)],
    )
    .await;
    app.mount_context("n", "t").await;
    app.expect_story("9", 1).await;
    let url = format!("{}/asana/attach-context", app.address);
    let body = json!({"task_gid": "1234567890", "context_name": "n"});
    let refused = [
        None,
        Some("Bearer wrong-key".to_owned()),
        Some(format!("Basic {KEY}")),
        Some(format!("Bearer {KEY}x")),
        Some("Bearer".to_owned()),
    ];

    for authorization in refused {
        let mut request = app.client.post(&url).json(&body);
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(
            error_code(response).await,
            "unauthorized",
            "{authorization:?}"
        );
    }
    let accepted = app
        .client
        .post(&url)
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(accepted.status(), 201);
}

#[tokio::test]
async fn without_an_api_key_remote_clients_are_refused() {
    let asana = wiremock::MockServer::start().await;
    let context = wiremock::MockServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings::from_vars(test_vars(&asana, &context, &dir)).expect("settings");
    let state = Arc::new(AppState::build(&settings).await.expect("state"));
    let remote: SocketAddr = "203.0.113.7:40000".parse().expect("address");
    let router = app::router(state).layer(MockConnectInfo(remote));
    let request = Request::post("/asana/attach-context")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"task_gid": "1", "context_name": "n"}"#))
        .expect("request");

    let response = router.oneshot(request).await.expect("response");

    assert_eq!(response.status(), 401);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(body["error"]["code"], "unauthorized");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("LINKER_API_KEY") && message.contains("published port"),
        "the refusal says why and what to do: {message}"
    );
    assert!(
        context
            .received_requests()
            .await
            .expect("recording on")
            .is_empty()
    );
}

#[tokio::test]
async fn without_an_api_key_requests_relayed_by_a_local_proxy_are_refused() {
    let app = spawn_app_with(Seed::Tokens(std::time::Duration::from_secs(3600)), &[]).await;
    let body = json!({"task_gid": "1234567890", "context_name": "n"});

    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let response = app
            .client
            .post(format!("{}/asana/attach-context", app.address))
            .header(header, "198.51.100.1")
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 401, "{header}");
        assert_eq!(error_code(response).await, "unauthorized", "{header}");
    }
    assert_eq!(app.upstream_requests().await, 0);
}

#[tokio::test]
async fn without_an_api_key_only_loopback_and_public_host_names_are_accepted() {
    let app = spawn_app_with(
        Seed::Tokens(std::time::Duration::from_secs(3600)),
        &[("PUBLIC_URL", "https://linker.example.com")],
    )
    .await;
    app.mount_context("n", "t").await;
    app.expect_story("9", 3).await;
    let body = json!({"task_gid": "1234567890", "context_name": "n"});
    let cases = [
        ("rebind.attacker.example", 401),
        ("rebind.attacker.example:3000", 401),
        ("localhost", 201),
        ("127.0.0.1:3000", 201),
        ("linker.example.com", 201),
    ];

    for (host, status) in cases {
        let response = app
            .client
            .post(format!("{}/asana/attach-context", app.address))
            .header("host", host)
            .json(&body)
            .send()
            .await
            .expect("sent");

        assert_eq!(response.status(), status, "Host: {host}");
    }
}

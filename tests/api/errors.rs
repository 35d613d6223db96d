//! The JSON error envelope everywhere, including axum's own rejections.

use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app};

#[tokio::test]
async fn malformed_json_gets_400_in_the_envelope() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(format!("{}/asana/attach-context", app.address))
        .header("content-type", "application/json")
        .body("{\"task_gid\": ")
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON, not plain text");
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn unknown_fields_are_refused() {
    let app = spawn_app().await;

    let response = app
        .post_attach(&json!({"task_gid": "1", "contex_name": "typo"}))
        .await;

    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_request");
}

#[tokio::test]
async fn a_wrong_content_type_gets_415_in_the_envelope() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(format!("{}/asana/attach-context", app.address))
        .header("content-type", "text/plain")
        .body(r#"{"task_gid": "1", "context_name": "a"}"#)
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), 415);
    assert_eq!(error_code(response).await, "unsupported_media_type");
}

#[tokio::test]
async fn a_body_over_64_kib_gets_413_in_the_envelope() {
    let app = spawn_app().await;
    let body = json!({"task_gid": "1", "context_name": "x".repeat(70 * 1024)});

    let response = app.post_attach(&body).await;

    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");
    assert_eq!(app.upstream_requests().await, 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_envelope() {
    let app = spawn_app().await;

    let unknown = app
        .client
        .get(format!("{}/no/such/route", app.address))
        .send()
        .await
        .expect("sent");
    let wrong_method = app
        .client
        .get(format!("{}/asana/attach-context", app.address))
        .send()
        .await
        .expect("sent");

    assert_eq!(unknown.status(), 404);
    assert_eq!(error_code(unknown).await, "not_found");
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(error_code(wrong_method).await, "method_not_allowed");
}

#[tokio::test]
async fn health_answers_ok_without_calling_upstreams() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(format!("{}/health", app.address))
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, json!({"status": "ok"}));
    assert_eq!(app.upstream_requests().await, 0);
}

#[tokio::test]
async fn errors_from_the_webhook_route_use_the_envelope_too() {
    let app = spawn_app().await;
    let cases = [
        (
            "/asana/webhooks/abc",
            vec![b'x'; 1024 * 1024 + 1],
            413,
            "payload_too_large",
        ),
        (
            "/asana/webhooks/%FF",
            b"{}".to_vec(),
            400,
            "invalid_request",
        ),
    ];
    for (path, body, status, code) in cases {
        let response = app
            .client
            .post(format!("{}{path}", app.address))
            .body(body)
            .send()
            .await
            .expect("sent");

        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        assert_eq!(error_code(response).await, code, "{path}");
    }
}

//! Token refresh: before expiry, single-flight, after a 401, and when Asana refuses it.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, STORIES_PATH, Seed, TOKEN_PATH, error_code,
    spawn_app_with, story, token_answer,
};

fn attach_body() -> serde_json::Value {
    json!({"task_gid": "1234567890", "context_name": "n"})
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_for_50_concurrent_requests() {
    let app = spawn_app_with(Seed::Tokens(Duration::ZERO), &[]).await;
    app.mount_context("n", "t").await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains(format!(
            "refresh_token={REFRESH_TOKEN}"
        )))
        .and(body_string_contains(format!("client_id={CLIENT_ID}")))
        .and(body_string_contains(format!(
            "client_secret={CLIENT_SECRET}"
        )))
        .and(body_string_contains("redirect_uri="))
        // Slow enough that all 50 requests arrive while the refresh is in flight.
        .respond_with(token_answer("access-token-2", None).set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&app.asana)
        .await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(header("authorization", "Bearer access-token-2"))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("1")))
        .expect(50)
        .mount(&app.asana)
        .await;

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let client = app.client.clone();
        let url = format!("{}/asana/attach-context", app.address);
        requests.spawn(async move { client.post(url).json(&attach_body()).send().await });
    }

    while let Some(response) = requests.join_next().await {
        let response = response.expect("task ran").expect("request sent");
        assert_eq!(response.status(), 201);
    }
}

#[tokio::test]
async fn a_refresh_without_a_new_refresh_token_keeps_the_old_one() {
    let app = spawn_app_with(Seed::Tokens(Duration::from_secs(30)), &[]).await;
    app.mount_context("n", "t").await;
    app.expect_refresh(token_answer("access-token-2", None), 1)
        .await;
    app.expect_story("1", 1).await;

    let response = app.post_attach(&attach_body()).await;

    assert_eq!(response.status(), 201);
    let file = app.stored().await;
    assert_eq!(file["access_token"], "access-token-2");
    assert_eq!(file["refresh_token"], REFRESH_TOKEN);
}

#[tokio::test]
async fn a_rotated_refresh_token_is_persisted() {
    let app = spawn_app_with(Seed::Tokens(Duration::ZERO), &[]).await;
    app.mount_context("n", "t").await;
    app.expect_refresh(token_answer("access-token-2", Some("refresh-token-2")), 1)
        .await;
    app.expect_story("1", 1).await;

    let response = app.post_attach(&attach_body()).await;

    assert_eq!(response.status(), 201);
    let file = app.stored().await;
    assert_eq!(file["access_token"], "access-token-2");
    assert_eq!(file["refresh_token"], "refresh-token-2");
}

#[tokio::test]
async fn asana_401_on_a_valid_looking_token_refreshes_once_and_retries_once() {
    let app = spawn_app_with(Seed::Tokens(Duration::from_secs(3600)), &[]).await;
    app.mount_context("n", "t").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(header("authorization", "Bearer access-token-1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&app.asana)
        .await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(header("authorization", "Bearer access-token-2"))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("77")))
        .expect(1)
        .mount(&app.asana)
        .await;
    app.expect_refresh(token_answer("access-token-2", None), 1)
        .await;

    let response = app.post_attach(&attach_body()).await;

    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["story_gid"], "77");
}

#[tokio::test]
async fn a_second_401_after_refreshing_is_not_retried_again() {
    let app = spawn_app_with(Seed::Tokens(Duration::from_secs(3600)), &[]).await;
    app.mount_context("n", "t").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&app.asana)
        .await;
    app.expect_refresh(token_answer("access-token-2", None), 1)
        .await;

    let response = app.post_attach(&attach_body()).await;

    assert_eq!(response.status(), 503);
    assert_eq!(error_code(response).await, "asana_not_connected");
}

#[tokio::test]
async fn a_refused_refresh_answers_503_and_forgets_the_dead_tokens() {
    let app = spawn_app_with(Seed::Tokens(Duration::ZERO), &[]).await;
    app.mount_context("n", "t").await;
    app.expect_refresh(
        ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
        1,
    )
    .await;
    app.expect_story("1", 0).await;

    let first = app.post_attach(&attach_body()).await;
    let second = app.post_attach(&attach_body()).await;

    assert_eq!(first.status(), 503);
    let body: serde_json::Value = first.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "asana_not_connected");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/asana/oauth/authorize")),
        "{body}"
    );
    assert_eq!(second.status(), 503, "no second refresh is attempted");
    assert_eq!(
        app.stored().await,
        json!(null),
        "the dead tokens are dropped"
    );
}

#[tokio::test]
async fn a_failing_token_endpoint_is_retried_then_answers_502_and_keeps_the_tokens() {
    let app = spawn_app_with(Seed::Tokens(Duration::ZERO), &[("RETRY_MAX_ATTEMPTS", "3")]).await;
    app.mount_context("n", "t").await;
    app.expect_refresh(ResponseTemplate::new(500), 3).await;

    let response = app.post_attach(&attach_body()).await;

    assert_eq!(response.status(), 502);
    assert_eq!(error_code(response).await, "upstream_error");
    assert_eq!(app.stored().await["refresh_token"], REFRESH_TOKEN);
}

#[tokio::test]
async fn a_refresh_endpoint_503_is_retried_and_then_succeeds() {
    let app = spawn_app_with(Seed::Tokens(Duration::ZERO), &[]).await;
    app.mount_context("n", "t").await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(&app.asana)
        .await;
    app.expect_refresh(token_answer("access-token-2", None), 1)
        .await;
    app.expect_story("1", 1).await;

    let response = app.post_attach(&attach_body()).await;

    assert_eq!(response.status(), 201);
    assert_eq!(app.stored().await["access_token"], "access-token-2");
}

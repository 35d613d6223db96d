//! Asana's rate limits and faults: retries, the shared 429 gate, no duplicate comments,
//! Idempotency-Key.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::helpers::{
    STORIES_PATH, Seed, Step, Stories, TestApp, error_code, spawn_app_with, story, without_marker,
};

const VALID: Seed = Seed::Tokens(Duration::from_secs(3600));

fn body() -> Value {
    json!({"task_gid": "1234567890", "context_name": "n"})
}

/// Answers 429 (Retry-After: 1) until `open_at`, then creates the story; counts both.
struct RateLimitedUntil {
    open_at: Instant,
    refused: Arc<AtomicUsize>,
    created: Arc<AtomicUsize>,
}

impl Respond for RateLimitedUntil {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if Instant::now() < self.open_at {
            self.refused.fetch_add(1, Ordering::SeqCst);
            ResponseTemplate::new(429).insert_header("retry-after", "1")
        } else {
            self.created.fetch_add(1, Ordering::SeqCst);
            ResponseTemplate::new(201).set_body_json(story("1"))
        }
    }
}

/// The story gid of a 201 answer.
async fn created_gid(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 201);
    let answer: Value = response.json().await.expect("JSON");
    answer["story_gid"].as_str().unwrap_or_default().to_owned()
}

async fn mount_stories_list(app: &TestApp, answer: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(STORIES_PATH))
        .respond_with(answer)
        .expect(1)
        .named("list stories")
        .mount(&app.asana)
        .await;
}

#[tokio::test]
async fn one_429_gate_holds_20_concurrent_attaches_and_each_waits_retry_after() {
    let app = spawn_app_with(VALID, &[("ASANA_MAX_CONCURRENT_WRITES", "4")]).await;
    app.mount_context("n", "t").await;
    let refused = Arc::new(AtomicUsize::new(0));
    let created = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(RateLimitedUntil {
            open_at: started + Duration::from_millis(500),
            refused: Arc::clone(&refused),
            created: Arc::clone(&created),
        })
        .mount(&app.asana)
        .await;

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = format!("{}/asana/attach-context", app.address);
        requests.spawn(async move { client.post(url).json(&body()).send().await });
    }
    while let Some(response) = requests.join_next().await {
        assert_eq!(response.expect("task").expect("sent").status(), 201);
    }

    let (refused, created) = (
        refused.load(Ordering::SeqCst),
        created.load(Ordering::SeqCst),
    );
    println!(
        "20 attaches sent; {} requests reached Asana ({refused} refused with 429, {created} created)",
        refused + created
    );
    assert_eq!(created, 20);
    assert!(
        (1..=4).contains(&refused),
        "only the first wave (4 writes in flight) meets the 429: {refused}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "everyone waited Retry-After"
    );
}

#[tokio::test]
async fn a_spent_budget_answers_429_with_the_retry_after_to_honour() {
    let app = spawn_app_with(VALID, &[("RETRY_BUDGET_SECS", "3")]).await;
    app.mount_context("n", "t").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "2"))
        .expect(2)
        .mount(&app.asana)
        .await;

    let response = app.post_attach(&body()).await;

    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(error_code(response).await, "asana_rate_limited");
}

#[tokio::test]
async fn a_context_server_503_is_retried() {
    let app = spawn_app_with(VALID, &[]).await;
    Mock::given(method("GET"))
        .and(path("/contexts/n"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&app.context)
        .await;
    app.mount_context("n", "t").await;
    app.expect_story("1", 1).await;

    let response = app.post_attach(&body()).await;

    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_500_from_asana_after_it_created_the_comment_does_not_post_it_again() {
    let app = spawn_app_with(VALID, &[]).await;
    app.mount_context("n", "the text").await;
    let stories = Stories::default();
    stories
        .mount(
            &app.asana,
            vec![Step::CreateAnd(ResponseTemplate::new(500))],
        )
        .await;

    let response = app.post_attach(&body()).await;

    assert_eq!(created_gid(response).await, "900");
    assert_eq!(stories.count(), 1, "posted once");
}

#[tokio::test]
async fn a_timeout_whose_comment_exists_is_not_posted_again() {
    let app = spawn_app_with(VALID, &[("ASANA_TIMEOUT_SECS", "1")]).await;
    app.mount_context("n", "the text").await;
    let stories = Stories::default();
    let slow_answer = ResponseTemplate::new(201)
        .set_body_json(story("900"))
        .set_delay(Duration::from_secs(3));
    stories
        .mount(&app.asana, vec![Step::CreateAnd(slow_answer)])
        .await;

    let response = app.post_attach(&body()).await;

    assert_eq!(created_gid(response).await, "900");
    assert_eq!(stories.count(), 1);
}

#[tokio::test]
async fn a_5xx_answer_whose_comment_is_absent_is_posted_exactly_once_more() {
    let app = spawn_app_with(VALID, &[]).await;
    app.mount_context("n", "the text").await;
    let stories = Stories::default();
    stories
        .mount(
            &app.asana,
            vec![Step::Refuse(ResponseTemplate::new(503)), Step::Create],
        )
        .await;

    let response = app.post_attach(&body()).await;

    assert_eq!(created_gid(response).await, "900");
    assert_eq!(stories.count(), 1);
}

#[tokio::test]
async fn a_second_attach_of_the_same_context_is_posted_although_the_first_has_the_same_text() {
    let app = spawn_app_with(VALID, &[]).await;
    app.mount_context("n", "the text").await;
    let stories = Stories::default();
    stories
        .mount(
            &app.asana,
            vec![
                Step::Create,
                Step::Refuse(ResponseTemplate::new(503)),
                Step::Create,
            ],
        )
        .await;

    let first = app.post_attach(&body()).await;
    let second = app.post_attach(&body()).await;

    let first: Value = first.json().await.expect("JSON");
    let second: Value = second.json().await.expect("JSON");
    assert_eq!(first["story_gid"], "900");
    assert_eq!(
        second["story_gid"], "901",
        "the second attach must not claim the first one's comment"
    );
    assert_eq!(stories.count(), 2);
    assert_eq!(
        without_marker(&stories.text(0)),
        without_marker(&stories.text(1)),
        "same text, told apart by the marker only"
    );
}

#[tokio::test]
async fn a_slow_asana_gets_one_post_and_a_504_then_a_retry_with_the_key_finds_the_comment() {
    let app = spawn_app_with(VALID, &[("ASANA_TIMEOUT_SECS", "1")]).await;
    app.mount_context("n", "the text").await;
    let stories = Stories::default();
    stories
        .mount(
            &app.asana,
            vec![Step::CreateSlowly(Duration::from_millis(2500))],
        )
        .await;

    let first = post_with_key(&app, "slow-1", &body()).await;

    assert_eq!(first.status(), 504);
    let message = first.text().await.expect("body");
    assert!(message.contains("outcome_unknown"), "{message}");
    assert!(message.contains("same Idempotency-Key"), "{message}");
    assert_eq!(stories.count(), 1, "no second post while it cannot tell");
    tokio::time::sleep(Duration::from_millis(2600)).await;

    let retry = post_with_key(&app, "slow-1", &body()).await;

    assert_eq!(retry.status(), 201);
    let answer: Value = retry.json().await.expect("JSON");
    assert_eq!(answer["story_gid"], "900");
    assert_eq!(stories.count(), 1, "found, not posted again");
}

#[tokio::test]
async fn an_unknown_outcome_is_kept_and_a_retry_posts_only_when_the_comment_is_absent() {
    let app = spawn_app_with(VALID, &[("ASANA_TIMEOUT_SECS", "1")]).await;
    app.mount_context("n", "the text").await;
    let stories = Stories::default();
    let lost = ResponseTemplate::new(504).set_delay(Duration::from_secs(2));
    stories
        .mount(&app.asana, vec![Step::Refuse(lost), Step::Create])
        .await;

    let first = post_with_key(&app, "lost-1", &body()).await;
    let retry = post_with_key(&app, "lost-1", &body()).await;
    let replay = post_with_key(&app, "lost-1", &body()).await;

    assert_eq!(first.status(), 504);
    assert_eq!(retry.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(stories.count(), 1, "posted by the retry only");
    let gets = app
        .asana
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .count();
    assert_eq!(
        gets, 2,
        "the first try looked once, the retry looked before posting"
    );
}

#[tokio::test]
async fn when_the_check_fails_the_comment_is_not_posted_blindly() {
    let app = spawn_app_with(VALID, &[]).await;
    app.mount_context("n", "the text").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(502))
        .expect(1)
        .mount(&app.asana)
        .await;
    mount_stories_list(&app, ResponseTemplate::new(403)).await;

    let response = app.post_attach(&body()).await;

    assert_eq!(response.status(), 504);
    assert_eq!(error_code(response).await, "outcome_unknown");
}

#[tokio::test]
async fn a_client_that_hangs_up_does_not_cancel_the_attach_and_its_outcome_is_kept() {
    let app = spawn_app_with(VALID, &[]).await;
    app.mount_context("n", "the text").await;
    let stories = Stories::default();
    let slow = ResponseTemplate::new(201)
        .set_body_json(story("900"))
        .set_delay(Duration::from_millis(800));
    stories.mount(&app.asana, vec![Step::CreateAnd(slow)]).await;

    let hung_up = tokio::time::timeout(
        Duration::from_millis(300),
        post_with_key(&app, "hang-up", &body()),
    )
    .await;
    assert!(hung_up.is_err(), "the client gave up before the answer");
    tokio::time::sleep(Duration::from_millis(900)).await;
    let retry = post_with_key(&app, "hang-up", &body()).await;

    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let answer: Value = retry.json().await.expect("JSON");
    assert_eq!(answer["story_gid"], "900");
    assert_eq!(stories.count(), 1);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_budget_answers_429_at_once_with_the_time_left() {
    let app = spawn_app_with(VALID, &[]).await;
    app.mount_context("n", "t").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .expect(1)
        .mount(&app.asana)
        .await;

    let started = Instant::now();
    let first = app.post_attach(&body()).await;
    let second = app.post_attach(&body()).await;

    assert!(
        started.elapsed() < Duration::from_secs(3),
        "nobody waits an hour"
    );
    assert_eq!(first.status(), 429);
    let retry_after: u64 = second.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((3590..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(error_code(second).await, "asana_rate_limited");
}

async fn post_with_key(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}/asana/attach-context", app.address))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_outcome_without_upstream_calls() {
    let app = spawn_app_with(VALID, &[]).await;
    Mock::given(method("GET"))
        .and(path("/contexts/n"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"context_text": "t"})))
        .expect(1)
        .mount(&app.context)
        .await;
    app.expect_story("901", 1).await;

    let first = post_with_key(&app, "order-1", &body()).await;
    let second = post_with_key(&app, "order-1", &body()).await;

    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (201, 201)
    );
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let (first, second): (Value, Value) = (
        first.json().await.expect("JSON"),
        second.json().await.expect("JSON"),
    );
    assert_eq!(first, second);
    assert_eq!(second["story_gid"], "901");
}

#[tokio::test]
async fn a_reused_key_with_another_body_gets_422() {
    let app = spawn_app_with(VALID, &[]).await;
    app.mount_context("n", "t").await;
    app.expect_story("1", 1).await;

    let first = post_with_key(&app, "order-2", &body()).await;
    let other = post_with_key(
        &app,
        "order-2",
        &json!({"task_gid": "1234567890", "context_name": "m"}),
    )
    .await;

    assert_eq!(first.status(), 201);
    assert_eq!(other.status(), 422);
    assert_eq!(error_code(other).await, "idempotency_key_reused");
}

#[tokio::test]
async fn concurrent_requests_with_one_key_make_one_post() {
    let app = spawn_app_with(VALID, &[]).await;
    app.mount_context("n", "t").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(story("902"))
                .set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&app.asana)
        .await;

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let client = app.client.clone();
        let url = format!("{}/asana/attach-context", app.address);
        requests.spawn(async move {
            client
                .post(url)
                .header("idempotency-key", "order-3")
                .json(&body())
                .send()
                .await
        });
    }
    while let Some(response) = requests.join_next().await {
        let response = response.expect("task").expect("sent");
        assert_eq!(response.status(), 201);
        let answer: Value = response.json().await.expect("JSON");
        assert_eq!(answer["story_gid"], "902");
    }
}

#[tokio::test]
async fn idempotency_keys_survive_a_restart() {
    let app = spawn_app_with(VALID, &[]).await;
    app.mount_context("n", "t").await;
    app.expect_story("903", 1).await;
    let first = post_with_key(&app, "order-4", &body()).await;
    assert_eq!(first.status(), 201);

    let app = app.restart().await;
    let again = post_with_key(&app, "order-4", &body()).await;

    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let answer: Value = again.json().await.expect("JSON");
    assert_eq!(answer["story_gid"], "903");
}

#[tokio::test]
async fn a_malformed_idempotency_key_gets_400() {
    let app = spawn_app_with(VALID, &[]).await;

    let response = post_with_key(&app, "has spaces", &body()).await;

    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_request");
    assert_eq!(app.upstream_requests().await, 0);
}

#[tokio::test]
async fn a_slow_upstream_never_holds_a_client_past_the_request_deadline() {
    let app = spawn_app_with(
        VALID,
        &[("REQUEST_DEADLINE_SECS", "1"), ("ASANA_TIMEOUT_SECS", "30")],
    )
    .await;
    app.mount_context("n", "t").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(story("1"))
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&app.asana)
        .await;
    let started = Instant::now();

    let response = app.post_attach(&body()).await;

    assert_eq!(response.status(), 504);
    assert_eq!(error_code(response).await, "outcome_unknown");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

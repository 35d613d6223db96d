//! Several replicas of the real binary on one PostgreSQL database, with a fake Asana: a
//! consent started on one finishes on another, one refresh serves all, one
//! `Idempotency-Key` posts once wherever it is sent, and a replica killed mid-post leaves
//! its attach to be finished by another without a second comment.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::binary::{Running, start};
use crate::helpers::{
    ACCESS_TOKEN, ACME, REFRESH_TOKEN, STORIES_PATH, Step, Stories, TOKEN_PATH, fresh_postgres_url,
    profile, stored_tokens, story, test_vars, token_answer,
};
use crate::webhooks::{announce, sign};

/// Replicas sharing one database, and the fakes they talk to.
struct Cluster {
    asana: MockServer,
    _context: MockServer,
    replicas: Vec<Running>,
    dir: tempfile::TempDir,
    vars: HashMap<String, String>,
}

/// Starts `count` replicas on a fresh database; with `tokens`, the first imports a token
/// file valid for that long (as an upgraded single replica would) before the others start.
async fn cluster(count: usize, tokens: Option<Duration>, extra: &[(&str, &str)]) -> Cluster {
    let asana = MockServer::start().await;
    let context = MockServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut vars: HashMap<String, String> = test_vars(&asana, &context, &dir);
    vars.insert("DATABASE_URL".into(), fresh_postgres_url().await);
    for (key, value) in extra {
        vars.insert((*key).into(), (*value).into());
    }
    if let Some(valid_for) = tokens {
        mcp_asana_linker::asana::TokenFile::new(vars["TOKEN_STORE_PATH"].clone().into())
            .save(&stored_tokens(ACCESS_TOKEN, Some(REFRESH_TOKEN), valid_for))
            .await
            .expect("seed tokens");
    }
    Mock::given(path("/contexts/n"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"context_text": "t"})))
        .mount(&context)
        .await;
    Mock::given(path("/api/1.0/users/me"))
        .respond_with(profile("42", "Ada Lovelace", "ada@example.com", &[ACME]))
        .mount(&asana)
        .await;
    let mut cluster = Cluster {
        asana,
        _context: context,
        replicas: Vec::new(),
        dir,
        vars,
    };
    // One after another: the first one imports the token file.
    for _ in 0..count {
        let replica = cluster.start_replica();
        cluster.replicas.push(replica);
    }
    cluster
}

impl Cluster {
    fn start_replica(&self) -> Running {
        let pairs: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        start(self.dir.path(), &pairs)
    }

    fn attach(
        &self,
        replica: usize,
        key: Option<&str>,
    ) -> impl Future<Output = reqwest::Result<reqwest::Response>> + use<> {
        let mut request = reqwest::Client::new()
            .post(format!(
                "{}/asana/attach-context",
                self.replicas[replica % self.replicas.len()].address
            ))
            .json(&json!({"task_gid": "1234567890", "context_name": "n"}));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send()
    }
}

#[tokio::test]
async fn a_consent_started_on_one_replica_finishes_on_another_and_serves_them_all() {
    let cluster = cluster(3, None, &[]).await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_answer("fresh-access", Some("fresh-refresh")))
        .expect(1)
        .mount(&cluster.asana)
        .await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer fresh-access",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("7")))
        .expect(2)
        .mount(&cluster.asana)
        .await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let first = &cluster.replicas[0].address;
    let started = browser
        .get(format!("{first}/asana/oauth/authorize"))
        .send()
        .await
        .expect("sent");
    let location =
        url::Url::parse(started.headers()["location"].to_str().expect("ASCII")).expect("URL");
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    // Asana sends the browser back through the load balancer: another replica.
    let second = &cluster.replicas[1].address;
    let consented = browser
        .get(format!(
            "{second}/asana/oauth/callback?code=the-code&state={state}"
        ))
        .header("cookie", crate::helpers::consent_cookie(&started))
        .send()
        .await
        .expect("sent");

    let second = cluster.attach(1, None).await.expect("sent");
    let third = cluster.attach(2, None).await.expect("sent");

    assert_eq!(
        consented.status(),
        303,
        "the consent completes on replica 1, on to the home page"
    );
    assert_eq!(second.status(), 201);
    assert_eq!(third.status(), 201);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_for_60_attaches_across_three_replicas() {
    let cluster = cluster(3, Some(Duration::ZERO), &[]).await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_answer("access-token-2", None).set_delay(Duration::from_millis(300)))
        .expect(1)
        .mount(&cluster.asana)
        .await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer access-token-2",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("8")))
        .expect(60)
        .mount(&cluster.asana)
        .await;

    let attaches: Vec<_> = (0..60)
        .map(|i| tokio::spawn(cluster.attach(i, None)))
        .collect();

    for attach in attaches {
        let response = attach.await.expect("task").expect("sent");
        assert_eq!(response.status(), 201);
    }
}

#[tokio::test]
async fn one_idempotency_key_sent_to_three_replicas_at_once_posts_one_comment() {
    let cluster = cluster(3, Some(Duration::from_secs(3600)), &[]).await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(story("9"))
                .set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&cluster.asana)
        .await;

    let attaches: Vec<_> = (0..6)
        .map(|i| tokio::spawn(cluster.attach(i, Some("order-77"))))
        .collect();

    for attach in attaches {
        let response = attach.await.expect("task").expect("sent");
        assert_eq!(response.status(), 201);
        let answer: Value = response.json().await.expect("JSON");
        assert_eq!(answer["story_gid"], "9");
    }
}

#[tokio::test]
async fn a_keyed_attach_whose_replica_is_killed_mid_post_is_finished_by_another_once() {
    let mut cluster = cluster(
        2,
        Some(Duration::from_secs(3600)),
        &[("REQUEST_DEADLINE_SECS", "2"), ("ASANA_TIMEOUT_SECS", "2")],
    )
    .await;
    let stories = Stories::default();
    // Asana takes a second to create the comment; the replica dies before it answers.
    stories
        .mount(
            &cluster.asana,
            vec![Step::CreateSlowly(Duration::from_secs(1)), Step::Create],
        )
        .await;
    let doomed = tokio::spawn(cluster.attach(0, Some("order-88")));
    let deadline = Instant::now() + Duration::from_secs(5);
    while stories.count() == 0 {
        assert!(Instant::now() < deadline, "the first replica never posted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(cluster.replicas.remove(0)); // SIGKILL
    let _ = doomed.await;

    // The client retries on the other replica, as long as it is told the first try runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut told_in_flight = 0;
    let (status, answer) = loop {
        let response = cluster.attach(0, Some("order-88")).await.expect("sent");
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let answer: Value = response.json().await.expect("JSON");
        if status != 409 {
            break (status, answer);
        }
        assert_eq!(answer["error"]["code"], "idempotency_in_flight");
        told_in_flight += 1;
        assert!(Instant::now() < deadline, "still in flight: {answer}");
        tokio::time::sleep(Duration::from_secs(
            retry_after.expect("Retry-After").min(2),
        ))
        .await;
    };

    assert!(
        told_in_flight > 0,
        "the dead replica's claim held until its lease ran out"
    );
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        answer["story_gid"], "900",
        "the first try's comment is found"
    );
    assert_eq!(stories.count(), 1, "no second comment");
}

#[tokio::test]
async fn a_429_seen_by_one_replica_pauses_the_others_without_calling_asana() {
    let cluster = cluster(
        2,
        Some(Duration::from_secs(3600)),
        &[("RETRY_BUDGET_SECS", "1")],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .expect(1)
        .mount(&cluster.asana)
        .await;

    let first = cluster.attach(0, None).await.expect("sent");
    // Replicas read the shared pause every second.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = cluster.attach(1, None).await.expect("sent");

    assert_eq!(first.status(), 429);
    assert_eq!(second.status(), 429, "paused without asking Asana");
    let wait: u64 = second.headers()["retry-after"]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("seconds");
    assert!((20..=30).contains(&wait), "the time still to wait: {wait}");
}

#[tokio::test]
async fn a_rolling_restart_under_load_answers_every_request_without_a_5xx() {
    let mut cluster = cluster(2, Some(Duration::from_secs(3600)), &[]).await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(story("10"))
                .set_delay(Duration::from_millis(100)),
        )
        .mount(&cluster.asana)
        .await;
    let addresses = std::sync::Arc::new(std::sync::Mutex::new(
        cluster
            .replicas
            .iter()
            .map(|r| r.address.clone())
            .collect::<Vec<_>>(),
    ));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Four clients, each sending one attach after another; a connection refused (a replica
    // stopping or not yet started) moves it to the next replica; anything else is recorded.
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let addresses = std::sync::Arc::clone(&addresses);
            let stop = std::sync::Arc::clone(&stop);
            tokio::spawn(async move {
                // No kept-alive connections: each request opens its own, as after a restart.
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .expect("client");
                let mut answers = Vec::new();
                let mut next = client;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let address = {
                        let addresses = addresses.lock().expect("addresses");
                        addresses[next % addresses.len()].clone()
                    };
                    next += 1;
                    let sent = http
                        .post(format!("{address}/asana/attach-context"))
                        .json(&json!({"task_gid": "1234567890", "context_name": "n"}))
                        .send()
                        .await;
                    match sent {
                        Ok(response) => answers.push(Ok(response.status().as_u16())),
                        Err(error) if error.is_connect() => {}
                        Err(error) => answers.push(Err(error.to_string())),
                    }
                }
                answers
            })
        })
        .collect();

    for i in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let status = cluster.replicas[i].terminate();
        assert!(status.success(), "replica {i} drained and exited 0");
        let fresh = cluster.start_replica();
        addresses.lock().expect("addresses")[i] = fresh.address.clone();
        cluster.replicas[i] = fresh;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    let mut answered = 0;
    for client in clients {
        for answer in client.await.expect("client") {
            assert_eq!(
                answer,
                Ok(201),
                "every request sent got its whole answer, no 5xx"
            );
            answered += 1;
        }
    }
    assert!(
        answered >= 20,
        "the load ran through the restarts: {answered} answers"
    );
}

impl Cluster {
    /// Announces hook `id` in the store (as `webhooks register`, another process, does) and
    /// sends Asana's handshake with `secret` to `replica`; its answer.
    async fn hook(&self, id: &str, secret: &str, replica: usize) -> reqwest::Response {
        announce(&self.vars, id).await;
        reqwest::Client::new()
            .post(format!(
                "{}/asana/webhooks/{id}",
                self.replicas[replica].address
            ))
            .header("x-hook-secret", secret)
            .send()
            .await
            .expect("sent")
    }

    /// Delivers `events`, signed with `secret`, through hook `id` to `replica`; the status.
    async fn deliver(&self, id: &str, secret: &str, replica: usize, events: &Value) -> u16 {
        let body = serde_json::to_vec(events).expect("json");
        reqwest::Client::new()
            .post(format!(
                "{}/asana/webhooks/{id}",
                self.replicas[replica].address
            ))
            .header("x-hook-signature", sign(secret, &body))
            .body(body)
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16()
    }
}

/// Asana's event for new comment `story_gid` on the task.
fn comment_event(story_gid: &str) -> Value {
    json!({"events": [{
        "action": "added",
        "resource": {"gid": story_gid, "resource_type": "story"},
        "parent": {"gid": "1234567890", "resource_type": "task"}
    }]})
}

/// Comment `story_gid` reads `/context n`.
async fn mount_command(asana: &MockServer, story_gid: &str) {
    Mock::given(path(format!("/api/1.0/stories/{story_gid}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "text": "/context n", "resource_subtype": "comment_added",
            "target": {"gid": "1234567890"}, "created_by": {"gid": "42"}
        }})))
        .mount(asana)
        .await;
}

/// How many comments Asana was asked to create.
async fn comments_posted(asana: &MockServer) -> usize {
    crate::helpers::requests(asana, "POST", STORIES_PATH).await
}

#[tokio::test]
async fn a_hook_registered_through_one_replica_and_an_event_delivered_to_both_attach_once() {
    let cluster = cluster(2, Some(Duration::from_secs(3600)), &[]).await;
    mount_command(&cluster.asana, "5001").await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(story("11"))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&cluster.asana)
        .await;
    // `webhooks register` announces the hook in the store; Asana's handshake reaches the
    // other replica.
    let handshake = cluster.hook("h1", "s", 1).await;
    let event = comment_event("5001");

    // Asana delivers the same event twice, once to each replica, at the same time.
    let statuses = tokio::join!(
        cluster.deliver("h1", "s", 0, &event),
        cluster.deliver("h1", "s", 1, &event)
    );
    // The attach runs after the 200: wait for the comment, then a little for a second one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while comments_posted(&cluster.asana).await == 0 {
        assert!(Instant::now() < deadline, "no comment was posted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(handshake.status(), 200, "any replica answers the handshake");
    assert_eq!(
        statuses,
        (200, 200),
        "both deliveries are verified with the stored secret"
    );
    assert_eq!(
        comments_posted(&cluster.asana).await,
        1,
        "the event ran once"
    );
}

#[tokio::test]
async fn a_webhook_event_whose_replica_is_killed_mid_post_is_finished_by_another_once() {
    let mut cluster = cluster(
        2,
        Some(Duration::from_secs(3600)),
        &[("REQUEST_DEADLINE_SECS", "2"), ("ASANA_TIMEOUT_SECS", "2")],
    )
    .await;
    mount_command(&cluster.asana, "5002").await;
    let stories = Stories::default();
    // Asana takes a second to create the comment; the replica dies before it answers.
    stories
        .mount(
            &cluster.asana,
            vec![Step::CreateSlowly(Duration::from_secs(1)), Step::Create],
        )
        .await;
    assert_eq!(cluster.hook("h2", "s", 0).await.status(), 200);

    let accepted = cluster.deliver("h2", "s", 0, &comment_event("5002")).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while stories.count() == 0 {
        assert!(Instant::now() < deadline, "the first replica never posted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(cluster.replicas.remove(0)); // SIGKILL, its 200 already given to Asana

    // The other replica takes the job over once lease and Asana timeout have passed, looks
    // for the comment the dead one posted, finds it, and posts nothing.
    crate::helpers::until_requested(
        &cluster.asana,
        "GET",
        STORIES_PATH,
        Duration::from_secs(15),
        "the job was never taken over",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(accepted, 200);
    assert_eq!(stories.count(), 1, "no second comment");
    assert_eq!(
        cluster.deliver("h2", "s", 0, &comment_event("5002")).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stories.count(),
        1,
        "a redelivery after the take-over does nothing"
    );
}

/// `POST /mcp` on `address` with the operator key, in a legacy session if one is named.
async fn mcp(address: &str, session: Option<&str>, message: Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{address}/mcp"))
        .bearer_auth("operator-key")
        .header("accept", "application/json, text/event-stream")
        .json(&message);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    request.send().await.expect("sent")
}

#[tokio::test]
async fn a_legacy_mcp_session_opened_on_one_replica_goes_on_on_another() {
    let cluster = cluster(
        2,
        Some(Duration::from_secs(3600)),
        &[("LINKER_API_KEY", "operator-key")],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("4242")))
        .expect(1)
        .mount(&cluster.asana)
        .await;
    let (first, second) = (&cluster.replicas[0].address, &cluster.replicas[1].address);

    let opened = mcp(
        first,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
    )
    .await;
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let acked = mcp(
        second,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    let called = mcp(
        second,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "attach_context",
            "arguments": {"task": "1234567890", "context": "n"}}}),
    )
    .await;

    assert_eq!(acked.status(), 202, "the other replica knows the session");
    assert_eq!(called.status(), 200);
    let body = called.text().await.expect("body");
    assert!(body.contains(r#""story_gids":["4242"]"#), "{body}");
    assert!(!body.contains(r#""isError":true"#), "{body}");
}

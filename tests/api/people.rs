//! Many people, one linker: each consent is its own connection, the first stays the default
//! until an operator marks another, the operator key acts as anyone it names with `as`, and a
//! personal key acts as its owner only, until it is revoked.

use std::time::{Duration, Instant, SystemTime};

use mcp_asana_linker::asana::{AsanaUser, StoredTokens};
use mcp_asana_linker::store::Store;
use mcp_asana_linker::{PersonalKeys, Settings};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{
    ACCESS_TOKEN, ACME, STORIES_PATH, Seed, TOKEN_PATH, TestApp, profile, spawn_app_with, story,
};
use crate::oauth::{return_to, start_consent};

pub const GRACE: &str = "77";
pub const GRACE_TOKEN: &str = "grace-access";

/// The app's store, as another process (the CLI) opens it.
pub async fn store(app: &TestApp) -> Store {
    let settings = Settings::from_vars(app.vars.clone()).expect("settings");
    Store::open(&settings.database_url, settings.store_sealer)
        .await
        .expect("store")
}

/// Ada (user 42, of Acme) is connected; Grace (user 77) connects through the browser.
pub async fn two_people(extra: &[(&str, &str)]) -> TestApp {
    let app = ada_connected(extra).await;
    let page = grace_consents(&app, &[ACME]).await;
    assert_eq!(page.status(), 303, "connected, on to the home page");
    app
}

/// Ada (user 42) connected through the browser, which recorded her workspace, Acme.
async fn ada_connected(extra: &[(&str, &str)]) -> TestApp {
    let app = spawn_app_with(Seed::Tokens(Duration::from_secs(3600)), extra).await;
    app.mount_context("design_notes", "notes").await;
    let acme = mcp_asana_linker::Workspace {
        gid: ACME.0.into(),
        name: ACME.1.into(),
    };
    store(&app)
        .await
        .record_workspaces("42", &[acme])
        .await
        .expect("workspaces");
    app
}

/// Grace, a member of `workspaces`, consents through the browser: the page she sees.
async fn grace_consents(app: &TestApp, workspaces: &[(&str, &str)]) -> reqwest::Response {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": GRACE_TOKEN, "refresh_token": "grace-refresh",
            "token_type": "bearer", "expires_in": 3600
        })))
        .expect(1)
        .mount(&app.asana)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/1.0/users/me"))
        .and(header("authorization", format!("Bearer {GRACE_TOKEN}")))
        .respond_with(profile(
            GRACE,
            "Grace Hopper",
            "grace@example.com",
            workspaces,
        ))
        .mount(&app.asana)
        .await;
    let started = start_consent(app).await;
    return_to(app, &started, "code=the-code").await
}

/// Comments posted with `token` answer 201; each must be posted `times` times.
async fn expect_posts_with(app: &TestApp, token: &str, times: u64) {
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(header("authorization", format!("Bearer {token}")))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("900")))
        .expect(times)
        .named(format!("comments posted with {token}"))
        .mount(&app.asana)
        .await;
}

async fn attach(app: &TestApp, bearer: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/asana/attach-context", app.address))
        .json(&body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.expect("sent")
}

fn body(acting_as: Option<&str>) -> Value {
    let mut body = json!({"task_gid": "1234567890", "context_name": "design_notes"});
    if let Some(who) = acting_as {
        body["as"] = json!(who);
    }
    body
}

async fn posted_as(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("JSON");
    (status, answer["posted_as"]["user_gid"].clone())
}

#[tokio::test]
async fn a_second_persons_consent_adds_a_connection_and_the_first_stays_the_default() {
    let app = two_people(&[("LINKER_API_KEY", "operator-key")]).await;
    expect_posts_with(&app, ACCESS_TOKEN, 1).await;
    expect_posts_with(&app, GRACE_TOKEN, 2).await;

    let unnamed = attach(&app, Some("operator-key"), body(None)).await;
    let by_email = attach(&app, Some("operator-key"), body(Some("GRACE@example.com"))).await;
    let by_gid = attach(&app, Some("operator-key"), body(Some(GRACE))).await;
    let nobody = attach(&app, Some("operator-key"), body(Some("nobody@example.com"))).await;

    assert_eq!(
        posted_as(unnamed).await,
        (201, json!("42")),
        "Ada's tokens are untouched"
    );
    assert_eq!(posted_as(by_email).await, (201, json!(GRACE)));
    assert_eq!(posted_as(by_gid).await, (201, json!(GRACE)));
    assert_eq!(nobody.status(), 404);
    let answer: Value = nobody.json().await.expect("JSON");
    assert_eq!(answer["error"]["code"], "connection_not_found");
}

#[tokio::test]
async fn an_operator_marked_default_acts_for_the_operator_key_within_seconds() {
    let app = two_people(&[]).await;
    expect_posts_with(&app, GRACE_TOKEN, 1).await;
    // `connections default 77`, run by the operator as another process.
    assert!(store(&app).await.set_default(GRACE).await.expect("mark"));

    let listed = store(&app).await.list_connections().await.expect("list");
    assert!(listed.iter().any(|c| c.user_gid == GRACE && c.is_default));

    // The server follows the store every second: until then it still posts as Ada, whose
    // posts the fake does not accept.
    let deadline = Instant::now() + Duration::from_secs(5);
    let answer = loop {
        let response = attach(&app, None, body(None)).await;
        if response.status() == 201 || Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(posted_as(answer).await, (201, json!(GRACE)));
}

#[tokio::test]
async fn a_personal_key_posts_as_its_owner_only_and_stops_working_once_disconnected() {
    let app = two_people(&[("LINKER_API_KEY", "operator-key")]).await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("900")))
        .mount(&app.asana)
        .await;
    let store = store(&app).await;
    let issued = PersonalKeys::new(store.clone())
        .issue(GRACE)
        .await
        .expect("issue");
    let key = issued.key.expose_secret();

    let own = attach(&app, Some(key), body(None)).await;
    let named_self = attach(&app, Some(key), body(Some("grace@example.com"))).await;
    let as_ada = attach(&app, Some(key), body(Some("42"))).await;
    let forged = attach(&app, Some(&format!("{key}0")), body(None)).await;

    assert_eq!(
        posted_as(own).await,
        (201, json!(GRACE)),
        "the fake saw Grace's token"
    );
    assert_eq!(posted_as(named_self).await, (201, json!(GRACE)));
    assert_eq!(
        as_ada.status(),
        403,
        "a personal key acts only as its owner"
    );
    assert_eq!(forged.status(), 401);
    let posts_by = |token: &'static str| {
        let asana = &app.asana;
        async move {
            let bearer = format!("Bearer {token}");
            asana
                .received_requests()
                .await
                .unwrap_or_default()
                .iter()
                .filter(|r| {
                    r.url.path() == STORIES_PATH
                        && r.headers.get("authorization").and_then(|v| v.to_str().ok())
                            == Some(bearer.as_str())
                })
                .count()
        }
    };
    assert_eq!(posts_by(GRACE_TOKEN).await, 2, "with Grace's token");
    assert_eq!(posts_by(ACCESS_TOKEN).await, 0, "never with Ada's");

    // `connections revoke 77`, from another process: the key stops working within seconds
    // (until the server has read the store again, its posts still go through).
    store.disconnect(GRACE).await.expect("disconnect");
    let deadline = Instant::now() + Duration::from_secs(8);
    let status = loop {
        let status = attach(&app, Some(key), body(None)).await.status().as_u16();
        if status != 201 || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 401);
}

#[tokio::test]
async fn consenting_again_keeps_the_persons_key_working() {
    let app = two_people(&[]).await;
    let store = store(&app).await;
    let issued = PersonalKeys::new(store.clone())
        .issue(GRACE)
        .await
        .expect("issue");
    // Grace consents again another day: her connection is updated, not replaced.
    store
        .save_consent(&StoredTokens {
            access_token: SecretString::from("grace-access-2"),
            refresh_token: Some(SecretString::from("grace-refresh-2")),
            expires_at: SystemTime::now() + Duration::from_secs(3600),
            user: AsanaUser {
                gid: GRACE.into(),
                name: "Grace Hopper".into(),
                email: Some("grace@example.com".into()),
            },
        })
        .await
        .expect("consent again");

    assert_eq!(
        PersonalKeys::new(store.clone())
            .owner(&issued.key)
            .await
            .expect("check")
            .as_deref(),
        Some(GRACE)
    );
    let listed = store.list_connections().await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|c| c.user_gid == "42" && c.is_default));
}

#[tokio::test]
async fn a_consent_from_another_workspace_gets_a_clear_page_and_stores_nothing() {
    let app = ada_connected(&[]).await;

    let page = grace_consents(&app, &[("2222", "Other & Co")]).await;

    assert_eq!(page.status(), 403);
    let text = page.text().await.expect("page");
    assert!(
        text.contains("Not for your workspace") && text.contains("Other &amp; Co"),
        "{text}"
    );
    assert!(!text.contains(GRACE_TOKEN));
    let listed = store(&app).await.list_connections().await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|c| c.user_gid.as_str())
            .collect::<Vec<_>>(),
        ["42"],
        "nothing of Grace's is stored"
    );
}

#[tokio::test]
async fn allowed_workspaces_names_who_may_connect() {
    for (allowed, admitted) in [("*", true), ("2222,3333", true), ("3333", false)] {
        let app = ada_connected(&[("ALLOWED_WORKSPACES", allowed)]).await;

        let page = grace_consents(&app, &[("2222", "Other")]).await;

        let expected = if admitted { 303 } else { 403 };
        assert_eq!(page.status(), expected, "ALLOWED_WORKSPACES={allowed}");
        let listed = store(&app).await.list_connections().await.expect("list");
        assert_eq!(listed.len(), if admitted { 2 } else { 1 });
    }
}

#[tokio::test]
async fn after_an_upgrade_only_the_first_person_may_connect_until_workspaces_are_known() {
    // Ada's connection was imported from the token file: her workspaces are not known.
    let app = spawn_app_with(Seed::Tokens(Duration::from_secs(3600)), &[]).await;

    let page = grace_consents(&app, &[ACME]).await;

    assert_eq!(
        page.status(),
        403,
        "nobody can tell Grace's workspace is Ada's"
    );
    assert_eq!(
        store(&app)
            .await
            .list_connections()
            .await
            .expect("list")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_429_for_one_person_holds_their_calls_only() {
    let app = two_people(&[]).await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(header("authorization", format!("Bearer {ACCESS_TOKEN}")))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .expect(1)
        .mount(&app.asana)
        .await;
    expect_posts_with(&app, GRACE_TOKEN, 1).await;

    let ada = attach(&app, None, body(None)).await;
    let grace = attach(&app, None, body(Some(GRACE))).await;
    let ada_again = attach(&app, None, body(None)).await;

    assert_eq!(ada.status(), 429);
    assert_eq!(
        posted_as(grace).await,
        (201, json!(GRACE)),
        "Grace is not held"
    );
    assert_eq!(
        ada_again.status(),
        429,
        "Ada is held without calling Asana again (the fake counts one call)"
    );
}

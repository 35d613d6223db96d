//! The home page: signed out it offers "Connect Asana"; after a consent it shows the person's
//! connection and a new personal key once (a reload shows no key and no error), and its forms
//! (new key, disconnect) work only with the session's CSRF token.

use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{
    STORIES_PATH, Seed, TOKEN_PATH, TestApp, spawn_app_with, story, token_answer,
};
use crate::oauth::{home_after, return_to, start_consent};

/// A person who just consented: the app, the page they landed on, their session cookie.
async fn consented() -> (TestApp, String, String) {
    let app = spawn_app_with(Seed::Nothing, &[]).await;
    app.mount_context("design_notes", "notes").await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(token_answer("fresh-access", Some("fresh-refresh")))
        .mount(&app.asana)
        .await;
    let started = start_consent(&app).await;
    let response = return_to(&app, &started, "code=the-code").await;
    let (page, cookie) = home_after(&app, response).await;
    (app, page, cookie)
}

/// The value of the first `attribute="…"` after `marker` in `page`.
fn value_after(page: &str, marker: &str) -> Option<String> {
    let start = page.find(marker)? + marker.len();
    let rest = &page[start..];
    let value = rest.split("value=\"").nth(1)?;
    Some(value.split('"').next()?.to_owned())
}

fn key_in(page: &str) -> Option<String> {
    value_after(page, "id=\"key\"").filter(|k| k.starts_with("mal_"))
}

fn csrf_in(page: &str) -> String {
    value_after(page, "name=\"csrf\"").expect("a CSRF token in the form")
}

async fn home(app: &TestApp, cookie: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .expect("sent")
}

async fn post_form(app: &TestApp, route: &str, cookie: &str, body: &str) -> reqwest::Response {
    app.client
        .post(format!("{}{route}", app.address))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("sent")
}

async fn attach_with(app: &TestApp, key: &str) -> u16 {
    app.client
        .post(format!("{}/asana/attach-context", app.address))
        .bearer_auth(key)
        .json(&json!({"task_gid": "1234567890", "context_name": "design_notes"}))
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

#[tokio::test]
async fn signed_out_the_home_page_offers_connect_asana_under_a_strict_policy() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;

    let response = app
        .client
        .get(format!("{}/", app.address))
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), 200);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        policy.contains("default-src 'none'")
            && policy.contains("script-src 'self'")
            && policy.contains("form-action 'self'")
            && policy.contains("frame-ancestors 'none'")
            && !policy.contains("unsafe"),
        "{policy}"
    );
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let page = response.text().await.expect("page");
    assert!(
        page.contains(r#"href="/asana/oauth/authorize">Connect Asana</a>"#),
        "{page}"
    );
    assert!(page.contains("name=\"viewport\""), "readable on a phone");
    let style = app
        .client
        .get(format!("{}/assets/linker.css", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(style.headers()["content-type"], "text/css; charset=utf-8");
}

#[tokio::test]
async fn after_a_consent_the_key_is_shown_once_and_a_reload_shows_no_key_and_no_error() {
    let (app, page, cookie) = consented().await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .and(header("authorization", "Bearer fresh-access"))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("9")))
        .expect(1)
        .mount(&app.asana)
        .await;

    let key = key_in(&page).expect("the new key is on the page");
    let reload = home(&app, &cookie).await;
    let posted = attach_with(&app, &key).await;
    // Posted comments are recorded off the attach path, a batch every 50 ms.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let after_attach = loop {
        let page = home(&app, &cookie).await.text().await.expect("page");
        if page.contains("/9\"") || std::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    assert_eq!(reload.status(), 200);
    let reload = reload.text().await.expect("page");
    assert!(
        reload.contains("Connected as <strong>Ada Lovelace</strong>"),
        "{reload}"
    );
    assert_eq!(key_in(&reload), None, "shown once: {reload}");
    assert!(!reload.contains(&key));
    assert!(
        reload.contains("Bearer $LINKER_KEY"),
        "the curl example, without the key"
    );
    assert!(
        // PUBLIC_URL defaults to the origin of the test's redirect URI.
        reload.contains("claude mcp add --transport http asana-linker http://localhost:3000/mcp"),
        "how to add the MCP server: {reload}"
    );
    assert!(
        page.contains(&format!("\"Authorization\": \"Bearer {key}\"")),
        "the MCP host configuration carries the new key: {page}"
    );
    assert_eq!(
        posted, 201,
        "the key posts as its owner (the fake checks her token)"
    );
    assert!(
        after_attach.contains("https://app.asana.com/0/0/1234567890/9"),
        "the last attaches link to the comment: {after_attach}"
    );
}

#[tokio::test]
async fn new_key_replaces_the_old_one_only_with_the_sessions_csrf_token() {
    let (app, page, cookie) = consented().await;
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("9")))
        .mount(&app.asana)
        .await;
    let old = key_in(&page).expect("a key");
    let csrf = csrf_in(&page);

    let forged = post_form(&app, "/keys/new", &cookie, "csrf=not-the-token").await;
    let missing = post_form(&app, "/keys/new", &cookie, "").await;
    let no_session = post_form(
        &app,
        "/keys/new",
        "linker_session=forged",
        &format!("csrf={csrf}"),
    )
    .await;
    let old_still_works = attach_with(&app, &old).await;
    let renewed = post_form(&app, "/keys/new", &cookie, &format!("csrf={csrf}")).await;
    let page = home(&app, &cookie).await.text().await.expect("page");
    let new = key_in(&page).expect("the new key, shown once");

    assert_eq!(
        (forged.status().as_u16(), missing.status().as_u16()),
        (403, 403)
    );
    assert_eq!(
        no_session.status(),
        303,
        "no session: back to the signed-out page"
    );
    assert_eq!(old_still_works, 201, "a refused form changed nothing");
    assert_eq!(renewed.status(), 303);
    assert_ne!(new, old);
    assert_eq!(
        attach_with(&app, &old).await,
        401,
        "the old key stops working"
    );
    assert_eq!(attach_with(&app, &new).await, 201);
}

#[tokio::test]
async fn disconnect_revokes_the_grant_at_asana_and_the_key_then_gets_401() {
    let (app, page, cookie) = consented().await;
    Mock::given(method("POST"))
        .and(path("/-/oauth_revoke"))
        .and(body_string_contains("token=fresh-refresh"))
        .and(body_string_contains("client_id="))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&app.asana)
        .await;
    let key = key_in(&page).expect("a key");
    let csrf = csrf_in(&page);

    let forged = post_form(&app, "/disconnect", &cookie, "csrf=x").await;
    let disconnected = post_form(&app, "/disconnect", &cookie, &format!("csrf={csrf}")).await;
    let cleared = disconnected
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.starts_with("linker_session=;") && v.contains("Max-Age=0"));
    let after = home(&app, &cookie).await.text().await.expect("page");

    assert_eq!(forged.status(), 403);
    assert_eq!(disconnected.status(), 303);
    assert!(cleared, "the session cookie is removed");
    assert!(after.contains("Connect Asana"), "signed out: {after}");
    assert_eq!(attach_with(&app, &key).await, 401);
}

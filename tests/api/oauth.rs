//! The consent flow: authorize redirect, state and PKCE checks, code exchange, storage.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, Seed, TOKEN_PATH, TestApp, error_code, spawn_app_with, token_answer,
};

/// What `/asana/oauth/authorize` handed to the browser.
pub struct Started {
    location: Url,
    params: HashMap<String, String>,
    set_cookie: String,
}

impl Started {
    fn state(&self) -> &str {
        &self.params["state"]
    }

    /// The value of the cookie that carries the consent.
    pub fn cookie(&self) -> &str {
        self.set_cookie
            .split(';')
            .next()
            .and_then(|pair| pair.strip_prefix("linker_consent="))
            .expect("a linker_consent cookie")
    }
}

pub async fn start_consent(app: &TestApp) -> Started {
    let response = app
        .client
        .get(format!("{}/asana/oauth/authorize", app.address))
        .send()
        .await
        .expect("sent");
    assert!(
        response.status().is_redirection(),
        "got {}",
        response.status()
    );
    let location = Url::parse(
        response.headers()["location"]
            .to_str()
            .expect("ASCII location"),
    )
    .expect("absolute URL");
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ASCII cookie")
        .to_owned();
    let params = location.query_pairs().into_owned().collect();
    Started {
        location,
        params,
        set_cookie,
    }
}

async fn callback(app: &TestApp, query: &str, consent: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(format!("{}/asana/oauth/callback?{query}", app.address));
    if let Some(consent) = consent {
        request = request.header("cookie", format!("linker_consent={consent}"));
    }
    request.send().await.expect("sent")
}

/// Where a successful callback sends the browser: the home page, with the session cookie it
/// set; the page's text and the cookie (`name=value`).
pub async fn home_after(app: &TestApp, callback: reqwest::Response) -> (String, String) {
    assert_eq!(
        callback.status(),
        303,
        "a consent that worked ends in a redirect"
    );
    assert_eq!(callback.headers()["location"], "/");
    let session = callback
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("linker_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    let cookie = session.split(';').next().unwrap_or_default().to_owned();
    let page = app
        .client
        .get(format!("{}/", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    (page.text().await.expect("page"), cookie)
}

/// The browser that started `started` comes back with `params` and the consent's state.
pub async fn return_to(app: &TestApp, started: &Started, params: &str) -> reqwest::Response {
    let query = format!("{params}&state={}", started.state());
    callback(app, &query, Some(started.cookie())).await
}

async fn mount_code_exchange(app: &TestApp, answer: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_string_contains("grant_type=authorization_code"))
        .and(body_string_contains("code=the-code"))
        .and(body_string_contains(format!("client_id={CLIENT_ID}")))
        .and(body_string_contains(format!(
            "client_secret={CLIENT_SECRET}"
        )))
        .and(body_string_contains("code_verifier="))
        .respond_with(answer)
        .expect(times)
        .named("code exchange")
        .mount(&app.asana)
        .await;
}

#[tokio::test]
async fn authorize_redirects_to_asana_with_state_pkce_and_a_browser_cookie() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;

    let started = start_consent(&app).await;

    assert_eq!(started.location.path(), "/-/oauth_authorize");
    assert_eq!(started.params["client_id"], CLIENT_ID);
    assert_eq!(
        started.params["redirect_uri"],
        "http://localhost:3000/asana/oauth/callback"
    );
    assert_eq!(started.params["response_type"], "code");
    assert_eq!(started.params["code_challenge_method"], "S256");
    assert_eq!(started.params["code_challenge"].len(), 43);
    assert!(started.state().len() >= 16, "state is unguessable");
    assert!(
        !started.params.contains_key("scope"),
        "no scope unless configured"
    );
    let cookie = &started.set_cookie;
    assert!(cookie.starts_with("linker_consent="), "{cookie}");
    assert!(
        !cookie.contains(started.state()),
        "the consent is sealed in the cookie"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(cookie.contains("Max-Age=600"), "{cookie}");

    let again = start_consent(&app).await;
    assert_ne!(again.state(), started.state());
    assert_ne!(
        again.params["code_challenge"],
        started.params["code_challenge"]
    );
}

#[tokio::test]
async fn authorize_sends_the_configured_scopes() {
    let app = spawn_app_with(
        Seed::Nothing,
        &[("ASANA_SCOPES", "stories:write tasks:read")],
    )
    .await;

    let started = start_consent(&app).await;

    assert_eq!(started.params["scope"], "stories:write tasks:read");
}

#[tokio::test]
async fn the_callback_exchanges_the_code_with_the_matching_verifier_and_stores_the_user() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;
    mount_code_exchange(&app, token_answer("fresh-access", Some("fresh-refresh")), 1).await;
    let started = start_consent(&app).await;

    let response = return_to(&app, &started, "code=the-code").await;

    let (page, _) = home_after(&app, response).await;
    assert!(
        page.contains(
            "Connected as <strong>Ada Lovelace</strong> (ada@example.com), workspace Acme"
        ),
        "{page}"
    );
    assert!(!page.contains("fresh-access") && !page.contains("fresh-refresh"));
    let exchange = &app.asana.received_requests().await.expect("recorded")[0];
    let form: HashMap<String, String> = url::form_urlencoded::parse(&exchange.body)
        .into_owned()
        .collect();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(form["code_verifier"].as_bytes()));
    assert_eq!(
        challenge, started.params["code_challenge"],
        "PKCE S256 holds"
    );
    assert_eq!(
        form["redirect_uri"],
        "http://localhost:3000/asana/oauth/callback"
    );
    let file = app.stored().await;
    assert_eq!(file["access_token"], "fresh-access");
    assert_eq!(file["refresh_token"], "fresh-refresh");
    assert_eq!(
        file["user"],
        json!({"gid": "42", "name": "Ada Lovelace", "email": "ada@example.com"})
    );
    let mode = std::fs::metadata(app.store_path())
        .expect("file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_replayed_state_is_refused_without_a_second_exchange() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;
    mount_code_exchange(&app, token_answer("fresh-access", Some("fresh-refresh")), 1).await;
    let started = start_consent(&app).await;
    let query = format!("code=the-code&state={}", started.state());

    let first = callback(&app, &query, Some(started.cookie())).await;
    let replay = callback(&app, &query, Some(started.cookie())).await;

    assert_eq!(first.status(), 303);
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await.expect("page").contains("invalid"));
}

#[tokio::test]
async fn forged_or_unbound_states_are_refused_before_any_request_to_asana() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;
    mount_code_exchange(&app, token_answer("x", Some("y")), 0).await;
    let started = start_consent(&app).await;
    let state = started.state().to_owned();
    let cases = [
        (
            "code=the-code&state=forged".to_owned(),
            Some("forged".to_owned()),
            "a state we never issued",
        ),
        (
            format!("code=the-code&state={state}"),
            None,
            "no browser cookie",
        ),
        (
            format!("code=the-code&state={state}"),
            Some("other".to_owned()),
            "another browser's cookie",
        ),
        (
            "code=the-code".to_owned(),
            Some(started.cookie().to_owned()),
            "no state",
        ),
    ];

    for (query, cookie, why) in cases {
        let response = callback(&app, &query, cookie.as_deref()).await;
        assert_eq!(response.status(), 400, "{why}");
    }
    assert!(!app.token_path.exists());
}

#[tokio::test]
async fn access_denied_gets_a_clear_page_and_stores_nothing() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;
    mount_code_exchange(&app, token_answer("x", Some("y")), 0).await;
    let started = start_consent(&app).await;

    let response = return_to(&app, &started, "error=access_denied").await;

    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("page");
    assert!(page.contains("declined access"), "{page}");
    assert!(!app.token_path.exists());
}

#[tokio::test]
async fn a_forged_access_denied_link_is_called_invalid_not_declined() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;

    let response = app
        .client
        .get(format!(
            "{}/asana/oauth/callback?error=access_denied&state=forged",
            app.address
        ))
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), 400);
    let page = response.text().await.expect("page");
    assert!(page.contains("Invalid sign-in link"), "{page}");
    assert!(!page.contains("declined"), "{page}");
}

#[tokio::test]
async fn pages_forbid_scripts_framing_and_sniffing() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;

    let response = app
        .client
        .get(format!("{}/asana/oauth/callback", app.address))
        .send()
        .await
        .expect("sent");

    let headers = response.headers();
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn the_user_name_is_read_from_users_me_and_escaped() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;
    let bare = ResponseTemplate::new(200).set_body_json(json!({
        "access_token": "fresh-access", "token_type": "bearer", "expires_in": 3600,
        "refresh_token": "fresh-refresh"
    }));
    mount_code_exchange(&app, bare, 1).await;
    Mock::given(method("GET"))
        .and(path("/api/1.0/users/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"data": {"gid": "7", "name": "<b>Eve</b>", "email": "eve@example.com"}}),
        ))
        .expect(1)
        .mount(&app.asana)
        .await;
    let started = start_consent(&app).await;

    let response = return_to(&app, &started, "code=the-code").await;

    let (page, _) = home_after(&app, response).await;
    assert!(
        page.contains("Connected as <strong>&lt;b&gt;Eve&lt;/b&gt;</strong>"),
        "{page}"
    );
}

#[tokio::test]
async fn a_refused_code_gets_a_400_page() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;
    mount_code_exchange(
        &app,
        ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
        1,
    )
    .await;
    let started = start_consent(&app).await;

    let response = return_to(&app, &started, "code=the-code").await;

    assert_eq!(response.status(), 400);
    assert!(!app.token_path.exists());
}

#[tokio::test]
async fn authorize_without_oauth_settings_names_what_is_missing() {
    let app = spawn_app_with(Seed::Nothing, &[("ASANA_CLIENT_ID", "")]).await;

    let response = app
        .client
        .get(format!("{}/asana/oauth/authorize", app.address))
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status(), 503);
    assert_eq!(error_code(response).await, "not_configured");
}

#[tokio::test]
async fn a_flood_of_authorize_requests_from_one_client_leaves_anothers_consent_working() {
    let app = spawn_app_with(Seed::Nothing, &[]).await;
    mount_code_exchange(&app, token_answer("fresh-access", Some("fresh-refresh")), 1).await;
    let started = start_consent(&app).await;

    // Someone else starts 2,000 consents and finishes none.
    let flood: Vec<_> = (0..2000)
        .map(|_| {
            app.client
                .get(format!("{}/asana/oauth/authorize", app.address))
                .send()
        })
        .collect();
    let mut refused = 0;
    for request in flood {
        if !request.await.expect("sent").status().is_redirection() {
            refused += 1;
        }
    }
    let settings = mcp_asana_linker::Settings::from_vars(app.vars.clone()).expect("settings");
    let store = mcp_asana_linker::store::Store::open(&settings.database_url, settings.store_sealer)
        .await
        .expect("store");
    let report = store.report().await.expect("report");
    let response = return_to(&app, &started, "code=the-code").await;

    assert_eq!(refused, 0);
    assert!(
        report.rows.contains(&("oauth_consents", 0)),
        "a consent in progress is kept in its browser, not on the server: {:?}",
        report.rows
    );
    let (page, _) = home_after(&app, response).await;
    assert!(
        page.contains("Connected as <strong>Ada Lovelace</strong>"),
        "{page}"
    );
}

//! A real browser (Debian's Chromium, headless, driven through ChromeDriver's WebDriver API)
//! through the home page and a fake Asana consent page, for two people: each connects, sees
//! their own name and a key shown once, a reload shows no key and no error, each key posts as
//! its owner, "New key" retires the old one, "Disconnect" revokes at the fake and the key then
//! gets 401. A screenshot of each state goes to `target/browser-screenshots/`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, Request, ResponseTemplate};

use crate::helpers::{
    ACME, STORIES_PATH, Seed, TOKEN_PATH, TestApp, profile, spawn_app_with, story,
};

/// ChromeDriver, started on a free port and stopped on drop.
struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Driver {
    async fn start() -> Self {
        let chromedriver = std::env::var("LINKER_TEST_CHROMEDRIVER").expect(
            "LINKER_TEST_CHROMEDRIVER is not set: run the tests with scripts/test, which installs Chromium and ChromeDriver",
        );
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(status) = ready
                && status.await.is_ok_and(|s| s["value"]["ready"] == true)
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A browser with a profile of its own (its own cookies).
    async fn browser(&self) -> Browser<'_> {
        let chromium = std::env::var("LINKER_TEST_CHROMIUM").expect(
            "LINKER_TEST_CHROMIUM is not set: run the tests with scripts/test, which installs Chromium",
        );
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=420,900",
        ];
        let created: Value = self
            .http
            .post(format!("{}/session", self.url))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args}
            }}}))
            .send()
            .await
            .expect("session request")
            .json()
            .await
            .expect("JSON");
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_owned();
        Browser { driver: self, id }
    }
}

/// One browser window, spoken to over WebDriver.
struct Browser<'a> {
    driver: &'a Driver,
    id: String,
}

impl Browser<'_> {
    async fn call(&self, method: reqwest::Method, route: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{route}", self.driver.url, self.id);
        let mut request = self.driver.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("webdriver answers")
            .json()
            .await
            .expect("JSON");
        assert!(answer["value"]["error"].is_null(), "{route}: {answer}");
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn reload(&self) {
        self.call(reqwest::Method::POST, "/refresh", Some(json!({})))
            .await;
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn element(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/element", self.driver.url, self.id);
        let answer: Value = self
            .driver
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .expect("webdriver answers")
            .json()
            .await
            .expect("JSON");
        // W3C WebDriver's key for an element reference.
        answer["value"]["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .map(str::to_owned)
    }

    async fn click(&self, css: &str) {
        let element = self
            .element(css)
            .await
            .unwrap_or_else(|| panic!("no {css} on the page"));
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// The `value` of the field `css`, if the page has it.
    async fn value(&self, css: &str) -> Option<String> {
        let element = self.element(css).await?;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/property/value"),
            None,
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    async fn screenshot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a PNG in base64");
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("screenshot written");
    }

    /// Waits until the page's source contains `text`.
    async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            assert!(Instant::now() < deadline, "never saw {text:?} in {source}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn close(self) {
        let _ = self
            .driver
            .http
            .delete(format!("{}/session/{}", self.driver.url, self.id))
            .send()
            .await;
    }
}

/// The people of the fake Asana: login, name, tokens.
const PEOPLE: [(&str, &str, &str); 2] = [
    ("ada", "Ada Lovelace", "42"),
    ("grace", "Grace Hopper", "77"),
];

/// The linker on a port its redirect URI names, and a fake Asana with a consent page offering
/// each person, a token endpoint and `/users/me` that know them, and comments they post.
async fn linker_and_fake_asana() -> TestApp {
    let port = free_port().to_string();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/asana/oauth/callback");
    let app = spawn_app_with(
        Seed::Nothing,
        &[
            ("PORT", &port),
            ("ASANA_REDIRECT_URI", &redirect),
            ("PUBLIC_URL", &base),
        ],
    )
    .await;
    app.mount_context("design_notes", "notes").await;
    Mock::given(method("GET"))
        .and(path("/-/oauth_authorize"))
        .respond_with(|request: &Request| {
            let query: std::collections::HashMap<String, String> =
                request.url.query_pairs().into_owned().collect();
            let back = |code: &str| {
                let mut url = url::Url::parse(&query["redirect_uri"]).expect("redirect_uri");
                url.query_pairs_mut()
                    .append_pair("code", code)
                    .append_pair("state", &query["state"]);
                url.to_string()
            };
            let links: String = PEOPLE
                .iter()
                .map(|(login, name, _)| {
                    format!(
                        "<p><a id=\"{login}\" href=\"{}\">Allow as {name}</a></p>",
                        back(login)
                    )
                })
                .collect();
            ResponseTemplate::new(200).set_body_raw(
                format!("<html><body><h1>Fake Asana</h1>{links}</body></html>"),
                "text/html",
            )
        })
        .mount(&app.asana)
        .await;
    for (login, name, gid) in PEOPLE {
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .and(body_string_contains(format!("code={login}&")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("{login}-access"), "refresh_token": format!("{login}-refresh"),
                "token_type": "bearer", "expires_in": 3600
            })))
            .mount(&app.asana)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/1.0/users/me"))
            .and(header("authorization", format!("Bearer {login}-access")))
            .respond_with(profile(gid, name, &format!("{login}@example.com"), &[ACME]))
            .mount(&app.asana)
            .await;
    }
    Mock::given(method("POST"))
        .and(path(STORIES_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(story("9")))
        .mount(&app.asana)
        .await;
    Mock::given(method("POST"))
        .and(path("/-/oauth_revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&app.asana)
        .await;
    app
}

/// Attaches with `key`: the status, and the bearer token the fake Asana saw for it.
async fn attach_with(app: &TestApp, key: &str) -> (u16, Option<String>) {
    let before = app
        .asana
        .received_requests()
        .await
        .unwrap_or_default()
        .len();
    let status = app
        .client
        .post(format!("{}/asana/attach-context", app.address))
        .bearer_auth(key)
        .json(&json!({"task_gid": "1234567890", "context_name": "design_notes"}))
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16();
    let seen = app.asana.received_requests().await.unwrap_or_default();
    let token = seen[before..]
        .iter()
        .find(|r| r.url.path() == STORIES_PATH)
        .and_then(|r| r.headers.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("Bearer ").to_owned());
    (status, token)
}

/// One person connects in their own browser; the key they were shown.
async fn connect(browser: &Browser<'_>, app: &TestApp, login: &str, name: &str) -> String {
    browser.open(&format!("{}/", app.address)).await;
    browser.wait_for("Connect Asana").await;
    browser.screenshot(&format!("{login}-1-signed-out")).await;
    browser.click("a.button").await;
    browser.wait_for("Fake Asana").await;
    browser.click(&format!("#{login}")).await;
    let page = browser
        .wait_for(&format!("Connected as <strong>{name}</strong>"))
        .await;
    assert!(page.contains("workspace Acme"), "{page}");
    let key = browser.value("#key").await.expect("the key, shown once");
    assert!(key.starts_with("mal_"), "{key}");
    browser
        .screenshot(&format!("{login}-2-connected-key-shown"))
        .await;

    browser.reload().await;
    let reloaded = browser.wait_for("Connected as").await;
    assert_eq!(browser.value("#key").await, None, "no key after a reload");
    assert!(
        !reloaded.contains(&key) && !reloaded.contains("invalid"),
        "{reloaded}"
    );
    browser.screenshot(&format!("{login}-3-reloaded")).await;
    key
}

#[tokio::test]
async fn two_people_connect_in_a_real_browser_and_manage_their_keys() {
    let driver = Driver::start().await;
    let app = linker_and_fake_asana().await;
    let ada_browser = driver.browser().await;
    let grace_browser = driver.browser().await;

    let ada_key = connect(&ada_browser, &app, "ada", "Ada Lovelace").await;
    let grace_key = connect(&grace_browser, &app, "grace", "Grace Hopper").await;

    assert_eq!(
        attach_with(&app, &ada_key).await,
        (201, Some("ada-access".into()))
    );
    assert_eq!(
        attach_with(&app, &grace_key).await,
        (201, Some("grace-access".into()))
    );

    // Ada makes a new key: the page shows it once, the old one stops working.
    ada_browser.click("form[action='/keys/new'] button").await;
    ada_browser.wait_for("Your personal API key").await;
    let new_key = ada_browser.value("#key").await.expect("the new key");
    ada_browser.screenshot("ada-4-new-key").await;
    assert_ne!(new_key, ada_key);
    assert_eq!(attach_with(&app, &ada_key).await, (401, None));
    assert_eq!(
        attach_with(&app, &new_key).await,
        (201, Some("ada-access".into()))
    );

    // Grace disconnects: revoked at the fake, her key refused, her browser signed out.
    grace_browser
        .click("form[action='/disconnect'] button")
        .await;
    grace_browser.wait_for("Connect Asana").await;
    grace_browser.screenshot("grace-4-disconnected").await;
    let revoked = app
        .asana
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| {
            r.url.path() == "/-/oauth_revoke"
                && String::from_utf8_lossy(&r.body).contains("token=grace-refresh")
        })
        .count();
    assert_eq!(revoked, 1, "the grant is revoked at Asana");
    assert_eq!(attach_with(&app, &grace_key).await, (401, None));
    assert_eq!(
        attach_with(&app, &new_key).await,
        (201, Some("ada-access".into())),
        "Ada is untouched"
    );

    ada_browser.close().await;
    grace_browser.close().await;
}

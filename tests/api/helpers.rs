//! `spawn_app()` and the mocks every test shares.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mcp_asana_linker::asana::{AsanaUser, StoredTokens, TokenFile};
use mcp_asana_linker::config::LogFormat;
use mcp_asana_linker::store::{DatabaseUrl, PostedStory, Store};
use mcp_asana_linker::{Application, Settings, telemetry};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tempfile::TempDir;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Logs go to stderr only when `TEST_LOG` is set.
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = telemetry::init(LogFormat::Pretty, "debug");
    }
});

pub const ACCESS_TOKEN: &str = "access-token-1";
/// The Asana user of the seeded connection.
pub const USER_GID: &str = "42";
pub const REFRESH_TOKEN: &str = "refresh-token-1";
pub const CLIENT_ID: &str = "client-123";
pub const CLIENT_SECRET: &str = "client-secret-xyz";
pub const TOKEN_PATH: &str = "/-/oauth_token";
pub const STORIES_PATH: &str = "/api/1.0/tasks/1234567890/stories";

/// What the stored tokens look like before the test starts.
pub enum Seed {
    /// No token file.
    Nothing,
    /// Tokens expiring in `Duration` (zero: already expired).
    Tokens(Duration),
}

/// A running service with its fakes.
pub struct TestApp {
    pub address: String,
    pub asana: MockServer,
    pub context: MockServer,
    pub token_path: PathBuf,
    pub client: reqwest::Client,
    _dir: TempDir,
    /// The settings it was started with.
    pub vars: HashMap<String, String>,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Settings pointing at the fakes; `overrides` may replace or (with "") unset any of them.
pub fn test_vars(
    asana: &MockServer,
    context: &MockServer,
    dir: &TempDir,
) -> HashMap<String, String> {
    let asana_uri = asana.uri();
    [
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("MCP_SERVER_URL", context.uri()),
        // The seed's REST contract; MCP and `auto` have tests of their own.
        ("MCP_PROTOCOL", "rest".to_owned()),
        // Bodies stay readable in assertions; the header has tests of its own.
        ("COMMENT_HEADER", "false".to_owned()),
        ("ASANA_CLIENT_ID", CLIENT_ID.to_owned()),
        ("ASANA_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        (
            "ASANA_REDIRECT_URI",
            "http://localhost:3000/asana/oauth/callback".to_owned(),
        ),
        ("ASANA_API_BASE_URL", format!("{asana_uri}/api/1.0")),
        (
            "ASANA_AUTHORIZE_URL",
            format!("{asana_uri}/-/oauth_authorize"),
        ),
        ("ASANA_TOKEN_URL", format!("{asana_uri}{TOKEN_PATH}")),
        (
            "TOKEN_STORE_PATH",
            dir.path()
                .join("data/asana_tokens.json")
                .display()
                .to_string(),
        ),
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("data/linker.db").display()),
        ),
        ("MCP_TIMEOUT_SECS", "2".to_owned()),
        ("ASANA_TIMEOUT_SECS", "2".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A connected service with a token valid for an hour.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Seed::Tokens(Duration::from_secs(3600)), &[]).await
}

/// A service with the given tokens and setting overrides.
pub async fn spawn_app_with(seed: Seed, overrides: &[(&str, &str)]) -> TestApp {
    LazyLock::force(&TRACING);
    let asana = MockServer::start().await;
    let context = MockServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut vars = test_vars(&asana, &context, &dir);
    for (key, value) in overrides {
        vars.insert((*key).to_owned(), (*value).to_owned());
    }
    let token_path = PathBuf::from(&vars["TOKEN_STORE_PATH"]);
    if let Seed::Tokens(valid_for) = seed {
        TokenFile::new(token_path.clone())
            .save(&stored_tokens(ACCESS_TOKEN, Some(REFRESH_TOKEN), valid_for))
            .await
            .expect("seed the token file");
    }
    // Whoever consents is Ada of workspace Acme, unless a test says otherwise.
    Mock::given(method("GET"))
        .and(path("/api/1.0/users/me"))
        .respond_with(profile("42", "Ada Lovelace", "ada@example.com", &[ACME]))
        .with_priority(10)
        .named("users/me (Ada)")
        .mount(&asana)
        .await;
    let (address, stop, served) = serve(&vars).await;
    TestApp {
        address,
        asana,
        context,
        token_path,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        _dir: dir,
        vars,
        stop,
        served,
    }
}

type Served = (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
);

/// Starts the service with `vars`; it runs until told to stop.
async fn serve(vars: &HashMap<String, String>) -> Served {
    let settings = Settings::from_vars(vars.clone()).expect("test settings are valid");
    let application = Application::build(&settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(application.run_until(async move {
        let _ = stopped.await;
    }));
    (address, stop, served)
}

pub fn stored_tokens(access: &str, refresh: Option<&str>, valid_for: Duration) -> StoredTokens {
    StoredTokens {
        access_token: SecretString::from(access),
        refresh_token: refresh.map(SecretString::from),
        expires_at: SystemTime::now() + valid_for,
        user: AsanaUser {
            gid: USER_GID.into(),
            name: "Ada Lovelace".into(),
            email: Some("ada@example.com".into()),
        },
    }
}

impl TestApp {
    /// Stops the service, waits until it has, and starts it again on the same data
    /// directory, settings and fakes (on a new port).
    pub async fn restart(self) -> TestApp {
        let _ = self.stop.send(());
        self.served
            .await
            .expect("the service task")
            .expect("the service stopped cleanly");
        let (address, stop, served) = serve(&self.vars).await;
        TestApp {
            address,
            stop,
            served,
            ..self
        }
    }

    /// `POST /asana/attach-context` with a JSON body.
    pub async fn post_attach(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/asana/attach-context", self.address))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// The context server serves `text` for `name`.
    pub async fn mount_context(&self, name: &str, text: &str) {
        Mock::given(method("GET"))
            .and(path(format!("/contexts/{name}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"context_text": text})))
            .named("context")
            .mount(&self.context)
            .await;
    }

    /// Asana creates a story with gid `story_gid` on the test task, `times` times exactly.
    pub async fn expect_story(&self, story_gid: &str, times: u64) {
        Mock::given(method("POST"))
            .and(path(STORIES_PATH))
            .respond_with(ResponseTemplate::new(201).set_body_json(story(story_gid)))
            .expect(times)
            .named("create story")
            .mount(&self.asana)
            .await;
    }

    /// The token endpoint answers a refresh with `answer`, `times` times exactly.
    pub async fn expect_refresh(&self, answer: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .and(body_string_contains("grant_type=refresh_token"))
            .respond_with(answer)
            .expect(times)
            .named("refresh")
            .mount(&self.asana)
            .await;
    }

    /// The token file as JSON.
    /// The default connection's tokens and user as the store holds them; `null` for none.
    pub async fn stored(&self) -> Value {
        let settings = Settings::from_vars(self.vars.clone()).expect("settings");
        let store = Store::open(&settings.database_url, settings.store_sealer)
            .await
            .expect("the store opens");
        match store.default_connection().await.expect("the store answers") {
            None => Value::Null,
            Some(tokens) => json!({
                "access_token": tokens.access_token.expose_secret(),
                "refresh_token": tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
                "user": tokens.user,
            }),
        }
    }

    /// The comments the store has recorded as posted (written off the attach path: waited
    /// for, up to five seconds).
    pub async fn posted_stories(&self) -> Vec<PostedStory> {
        let settings = Settings::from_vars(self.vars.clone()).expect("settings");
        let store = Store::open(&settings.database_url, settings.store_sealer)
            .await
            .expect("the store opens");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let posted = store.latest_posted(USER_GID, 100).await.expect("read");
            if !posted.is_empty() || Instant::now() > deadline {
                return posted;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The SQLite file of the store.
    pub fn store_path(&self) -> PathBuf {
        let url = DatabaseUrl::parse(&self.vars["DATABASE_URL"]).expect("DATABASE_URL");
        url.sqlite_path().expect("an SQLite store").to_owned()
    }

    /// Every request the fakes received.
    pub async fn upstream_requests(&self) -> usize {
        let asana = self.asana.received_requests().await.expect("recording on");
        let context = self
            .context
            .received_requests()
            .await
            .expect("recording on");
        asana.len() + context.len()
    }
}

/// An Asana story answer.
/// A new, empty database on the test PostgreSQL server (`TEST_DATABASE_URL`, which
/// `scripts/test` sets), and its URL.
pub async fn fresh_postgres_url() -> String {
    let server = std::env::var("TEST_DATABASE_URL").expect(
        "TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts PostgreSQL",
    );
    let name = format!("linker_api_{:016x}", rand_u64());
    let admin = sqlx::PgPool::connect(&server)
        .await
        .expect("the test PostgreSQL server answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create a test database");
    admin.close().await;
    let mut url = url::Url::parse(&server).expect("TEST_DATABASE_URL");
    url.set_path(&name);
    url.to_string()
}

/// Drops the database at `url` while the service is connected to it.
pub async fn drop_postgres(url: &str) {
    let server = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
    let name = url::Url::parse(url)
        .expect("url")
        .path()
        .trim_start_matches('/')
        .to_owned();
    let admin = sqlx::PgPool::connect(&server).await.expect("server");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .expect("drop the test database");
    admin.close().await;
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

pub fn story(gid: &str) -> Value {
    story_json(gid)
}

fn story_json(gid: &str) -> Value {
    json!({"data": {"gid": gid, "resource_type": "story", "type": "comment", "text": "…"}})
}

/// A token endpoint answer.
/// The workspace of the test's Asana users, unless a test says otherwise.
pub const ACME: (&str, &str) = ("1111", "Acme");

/// `/users/me` for a user in `workspaces` (gid, name).
pub fn profile(
    gid: &str,
    name: &str,
    email: &str,
    workspaces: &[(&str, &str)],
) -> ResponseTemplate {
    let workspaces: Vec<Value> = workspaces
        .iter()
        .map(|(gid, name)| json!({"gid": gid, "name": name, "resource_type": "workspace"}))
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({"data": {
        "gid": gid, "name": name, "email": email, "workspaces": workspaces
    }}))
}

pub fn token_answer(access: &str, refresh: Option<&str>) -> ResponseTemplate {
    let mut body = json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": 3600,
        "data": {"id": 42, "gid": "42", "name": "Ada Lovelace", "email": "ada@example.com"}
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

/// How many `method` requests to `request_path` the fake received.
pub async fn requests(fake: &MockServer, method: &str, request_path: &str) -> usize {
    fake.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == method && r.url.path() == request_path)
        .count()
}

/// Waits (a poll, bounded by `within`) until the fake received a `method` request to
/// `request_path`; `what` names it in the failure.
pub async fn until_requested(
    fake: &MockServer,
    method: &str,
    request_path: &str,
    within: Duration,
    what: &str,
) {
    let deadline = Instant::now() + within;
    while requests(fake, method, request_path).await == 0 {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `Cookie` header a browser sends back after `/asana/oauth/authorize` answered
/// `response`: the consent it carries.
pub fn consent_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("linker_consent="))
        .and_then(|v| v.split(';').next())
        .expect("a consent cookie")
        .to_owned()
}

/// The error code of a JSON envelope.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("a JSON body");
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error envelope: {body}"))
        .to_owned()
}

/// A fake task's stories: what the linker posts is kept and listed back, as Asana would.
#[derive(Clone, Default)]
pub struct Stories(Arc<Mutex<Vec<(Instant, Value)>>>);

/// What the fake does with one POST of a comment.
pub enum Step {
    /// Creates the story and answers 201.
    Create,
    /// Creates the story (visible from now) but answers with this.
    CreateAnd(ResponseTemplate),
    /// Creates the story only after `Duration` (as a slow Asana would) and answers with
    /// this, delayed by as long.
    CreateSlowly(Duration),
    /// Creates nothing and answers with this.
    Refuse(ResponseTemplate),
}

/// Answers POSTs of comments by a script of steps (the last one repeats).
pub struct PostScript {
    stories: Stories,
    steps: Mutex<VecDeque<Step>>,
}

impl Respond for PostScript {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut steps = self.steps.lock().expect("steps");
        let step = if steps.len() > 1 {
            steps.pop_front().expect("a step")
        } else {
            match steps.front() {
                Some(Step::Create) | None => Step::Create,
                Some(Step::CreateAnd(answer)) => Step::CreateAnd(answer.clone()),
                Some(Step::CreateSlowly(delay)) => Step::CreateSlowly(*delay),
                Some(Step::Refuse(answer)) => Step::Refuse(answer.clone()),
            }
        };
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let data = &body["data"];
        match step {
            Step::Create => created(&self.stories.add(data, Duration::ZERO)),
            Step::CreateAnd(answer) => {
                self.stories.add(data, Duration::ZERO);
                answer
            }
            Step::CreateSlowly(delay) => created(&self.stories.add(data, delay)).set_delay(delay),
            Step::Refuse(answer) => answer,
        }
    }
}

fn created(gid: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(story_json(gid))
}

impl Stories {
    /// Keeps a comment with `data`'s text, visible after `delay`; returns its gid.
    fn add(&self, data: &Value, delay: Duration) -> String {
        let mut stories = self.0.lock().expect("stories");
        let gid = format!("{}", 900 + stories.len());
        let mut story = json!({"gid": gid, "resource_subtype": "comment_added"});
        for field in ["text", "html_text"] {
            if let Some(text) = data[field].as_str() {
                story[field] = json!(text);
            }
        }
        stories.push((Instant::now() + delay, story));
        gid
    }

    /// How many comments the task has (visible or not yet).
    pub fn count(&self) -> usize {
        self.0.lock().expect("stories").len()
    }

    /// The `text` or `html_text` of comment `i`.
    pub fn text(&self, i: usize) -> String {
        let stories = self.0.lock().expect("stories");
        let story = &stories[i].1;
        story["text"]
            .as_str()
            .or(story["html_text"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// Mounts the fake on `asana`: POSTs follow `steps`, GETs list what is visible.
    pub async fn mount(&self, asana: &MockServer, steps: Vec<Step>) {
        Mock::given(method("POST"))
            .and(path(STORIES_PATH))
            .respond_with(PostScript {
                stories: self.clone(),
                steps: Mutex::new(steps.into()),
            })
            .named("post comment")
            .mount(asana)
            .await;
        let listed = self.clone();
        Mock::given(method("GET"))
            .and(path(STORIES_PATH))
            .respond_with(move |_: &Request| {
                let now = Instant::now();
                let data: Vec<Value> = listed
                    .0
                    .lock()
                    .expect("stories")
                    .iter()
                    .filter(|(visible, _)| *visible <= now)
                    .map(|(_, story)| story.clone())
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"data": data, "next_page": null}))
            })
            .named("list stories")
            .mount(asana)
            .await;
    }
}

/// `text` without the attach marker line that ends every posted comment (checked to be there).
pub fn without_marker(text: &str) -> String {
    let (rest, last) = text
        .strip_suffix("</body>")
        .map_or((text, None), |inner| (inner, Some("</body>")));
    let (rest, line) = rest
        .rsplit_once("\n\n")
        .unwrap_or_else(|| panic!("no marker line in {text:?}"));
    let line = line.trim_start_matches("<em>").trim_end_matches("</em>");
    let id = line
        .strip_prefix("ref ")
        .unwrap_or_else(|| panic!("no marker line in {text:?}"));
    let hex = id.split('.').next().unwrap_or_default();
    assert!(
        hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "malformed marker {line:?}"
    );
    format!("{rest}{}", last.unwrap_or_default())
}

/// Matches a posted comment whose `field` is `expected` once its marker line is taken off.
pub struct CommentIs(pub &'static str, pub String);

impl wiremock::Match for CommentIs {
    fn matches(&self, request: &Request) -> bool {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        body["data"][self.0].as_str().is_some_and(|text| {
            std::panic::catch_unwind(|| without_marker(text)).ok() == Some(self.1.clone())
        })
    }
}

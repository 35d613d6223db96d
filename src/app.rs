//! Builds the shared state and the router, binds the listener, serves until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::asana::{AsanaClient, AsanaOAuth, PendingConsents, TokenFile, TokenManager};
use crate::config::Settings;
use crate::context::ContextSource;
use crate::error::ApiError;
use crate::idempotency::{IdempotencyFileError, IdempotencyStore};
use crate::observe::ObserveLayer;
use crate::openapi::ApiDoc;
use crate::readiness::Readiness;
use crate::retry::RetryPolicy;
use crate::routes;
use crate::webhooks::{HookStore, Queue, Rules, RulesError, spawn_workers};

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest webhook delivery accepted (Asana batches events).
const WEBHOOK_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The connected user's tokens.
    pub tokens: TokenManager,
    /// Asana's REST API.
    pub asana: AsanaClient,
    /// The retry policy of outbound calls.
    pub retry: RetryPolicy,
    /// Longest an attach may take.
    pub request_deadline: Duration,
    /// `Idempotency-Key` outcomes.
    pub idempotency: IdempotencyStore,
    /// How comments are laid out.
    pub comments: CommentSettings,
    /// Registered webhooks and their secrets.
    pub hooks: HookStore,
    /// Webhook events waiting for a worker.
    pub webhook_queue: Queue,
    /// Webhook events handled and comments the linker posted (24 h, on disk).
    pub webhook_seen: IdempotencyStore,
    /// Webhook rules from `WEBHOOK_RULES_PATH`.
    pub webhook_rules: Rules,
    /// Cached readiness checks.
    pub readiness: Readiness,
    /// `METRICS_PUBLIC`: whether `/metrics` needs no API key.
    pub metrics_public: bool,
    /// Where contexts come from; `None` until `MCP_SERVER_URL` or `MCP_SERVER_COMMAND` is set.
    pub context: Option<ContextSource>,
    /// Asana's OAuth endpoints; `None` until the OAuth settings are complete.
    pub oauth: Option<AsanaOAuth>,
    /// Which OAuth settings are missing, for error messages.
    pub missing_oauth: Vec<&'static str>,
    /// Consents started and not yet finished.
    pub consents: PendingConsents,
    /// `LINKER_API_KEY`.
    pub api_key: Option<SecretString>,
    /// Whether cookies get `Secure` (the redirect URI is https).
    pub secure_cookies: bool,
}

/// Comment layout settings.
#[derive(Debug, Clone, Copy)]
pub struct CommentSettings {
    /// `COMMENT_HEADER`.
    pub header: bool,
    /// `ASANA_COMMENT_MAX_CHARS`.
    pub max_chars: usize,
    /// `MAX_COMMENT_PARTS`.
    pub max_parts: usize,
}

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The webhook rules file is unusable.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The idempotency key file could not be read or compacted.
    #[error(transparent)]
    Idempotency(IdempotencyFileError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr} (HOST, PORT): {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
}

impl AppState {
    /// Builds clients and stores from the settings and loads the token file.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        crate::metrics::install();
        // One client for every upstream. It follows no redirects: the token endpoint must not
        // (oauth2-rs: SSRF), and neither Asana's API nor the context server needs them.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("mcp-asana-linker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(StartupError::HttpClient)?;
        let oauth = settings.oauth_app.as_ref().map(|app| {
            AsanaOAuth::new(
                app,
                &settings.asana_authorize_url,
                &settings.asana_token_url,
                settings.asana_scopes.clone(),
                http.clone(),
                settings.asana_timeout,
            )
        });
        let tokens = TokenManager::load(
            TokenFile::new(settings.token_store_path.clone()),
            oauth.clone(),
            settings.missing_oauth.clone(),
            settings.retry,
        )
        .await;
        // Kept beside the token file: the one directory the service writes to.
        let idempotency_path = settings
            .token_store_path
            .with_file_name("idempotency_keys.jsonl");
        let idempotency =
            IdempotencyStore::open(idempotency_path).map_err(StartupError::Idempotency)?;
        let beside_tokens = |name: &str| settings.token_store_path.with_file_name(name);
        let webhook_seen = IdempotencyStore::open(beside_tokens("webhook_seen.jsonl"))
            .map_err(StartupError::Idempotency)?;
        let webhook_rules = match &settings.webhook_rules_path {
            Some(path) => Rules::load(path)?,
            None => Rules::default(),
        };
        Ok(Self {
            tokens,
            asana: AsanaClient::new(
                http.clone(),
                &settings.asana_api_base_url,
                settings.asana_timeout,
                settings.asana_max_concurrent_writes,
            ),
            retry: settings.retry,
            request_deadline: settings.request_deadline,
            hooks: HookStore::new(beside_tokens("webhooks.json")),
            webhook_queue: Queue::new(),
            webhook_seen,
            webhook_rules,
            readiness: Readiness::default(),
            metrics_public: settings.metrics_public,
            comments: CommentSettings {
                header: settings.comment_header,
                max_chars: settings.asana_comment_max_chars,
                max_parts: settings.max_comment_parts,
            },
            idempotency,
            context: settings.context_server.as_ref().map(|server| {
                ContextSource::new(
                    server,
                    settings.mcp_auth_token.clone(),
                    http.clone(),
                    settings.mcp_timeout,
                    settings.retry,
                )
            }),
            oauth,
            missing_oauth: settings.missing_oauth.clone(),
            consents: PendingConsents::default(),
            api_key: settings.linker_api_key.clone(),
            secure_cookies: settings
                .oauth_app
                .as_ref()
                .is_some_and(|app| app.redirect_uri.scheme() == "https"),
        })
    }
}

/// The service's routes and layers over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let (router, _) = api().split_for_parts();
    // One layer call: every `Router::layer` wraps each route in another boxed service.
    let layers = ServiceBuilder::new()
        .layer(ObserveLayer)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a handler panicked".to_owned()).into_response()
        }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    router
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(layers)
        .with_state(state)
}

/// Every route with its OpenAPI description: the document is built from the same list the
/// router is, so the two cannot drift.
pub fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health::health))
        .routes(routes!(routes::operations::ready))
        .routes(routes!(routes::operations::metrics))
        .routes(routes!(routes::operations::openapi))
        .routes(routes!(routes::oauth::authorize))
        .routes(routes!(routes::oauth::callback))
        .routes(routes!(routes::attach::attach))
        .routes(routes!(routes::attach::preview))
        .routes(routes!(routes::contexts::list))
        .routes(
            routes!(routes::webhooks::receive)
                .map(|m| m.layer(DefaultBodyLimit::max(WEBHOOK_BODY_BYTES))),
        )
}

/// A bound, ready-to-run service.
pub struct Application {
    listener: TcpListener,
    router: Router,
    shutdown_grace: Duration,
    workers: Vec<tokio::task::JoinHandle<()>>,
    stop_workers: tokio::sync::watch::Sender<bool>,
    state: Arc<AppState>,
}

impl Application {
    /// Binds `HOST:PORT` and builds the state; logs what is not configured yet.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let state = AppState::build(settings).await?;
        // Only a server compacts: commands (`attach`, `check`, `webhooks`) may run beside one.
        state
            .idempotency
            .compact()
            .map_err(StartupError::Idempotency)?;
        state
            .webhook_seen
            .compact()
            .map_err(StartupError::Idempotency)?;
        if state.api_key.is_none() {
            tracing::warn!("LINKER_API_KEY is not set: the API accepts loopback clients only");
        }
        if settings.context_server.is_none() {
            tracing::warn!(
                "neither MCP_SERVER_URL nor MCP_SERVER_COMMAND is set: attach will answer 503"
            );
        }
        if !settings.missing_oauth.is_empty() {
            tracing::warn!(missing = ?settings.missing_oauth, "OAuth is not configured");
        }
        let addr = SocketAddr::new(settings.host, settings.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let state = Arc::new(state);
        let (stop_workers, stop) = tokio::sync::watch::channel(false);
        let workers = spawn_workers(Arc::clone(&state), stop);
        Ok(Self {
            listener,
            router: router(Arc::clone(&state)),
            state,
            shutdown_grace: settings.shutdown_grace,
            workers,
            stop_workers,
        })
    }

    /// The shared state, for commands that serve and watch (`authorize`).
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// The port actually bound (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish for at most `SHUTDOWN_GRACE_SECS`.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, "listening");
        }
        let (stopping, mut stopped) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = stopping.send(true);
        };
        let server = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let upkeep = crate::metrics::spawn_upkeep();
        let grace = self.shutdown_grace;
        let (stop_workers, workers) = (self.stop_workers, self.workers);
        // In-flight requests, then queued webhook events, all within the grace period.
        let finish = async move {
            let served = server.await;
            let _ = stop_workers.send(true);
            for worker in workers {
                let _ = worker.await;
            }
            served
        };
        let grace_over = async move {
            let _ = stopped.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            finished = finish => finished,
            () = grace_over => {
                tracing::warn!(grace_secs = grace.as_secs(), "work still in flight after the grace period; exiting");
                Ok(())
            }
        };
        upkeep.abort();
        result
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is
/// called, before the service says it is listening, so an early SIGTERM is never fatal.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {},
                    _ = interrupt.recv() => {},
                }
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "cannot listen for SIGTERM/SIGINT; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}

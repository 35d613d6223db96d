//! Builds the shared state and the router, binds the listener, serves until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::asana::{AsanaClient, AsanaOAuth, Connections, PendingConsents, TokenSettings};
use crate::config::Settings;
use crate::context::ContextSource;
use crate::http::access::AccessPolicy;
use crate::http::error::ApiError;
use crate::http::openapi::ApiDoc;
use crate::http::routes;
use crate::idempotency::Idempotency;
use crate::render::RenderCache;
use crate::service::attach::{Attacher, CommentSettings};
use crate::service::keys::PersonalKeys;
use crate::service::readiness::Readiness;
use crate::store::{Store, StoreError};
use crate::telemetry::observe::ObserveLayer;
use crate::webhooks::{HookStore, Jobs, Rules, RulesError, spawn_workers};

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest webhook delivery accepted (Asana batches events).
const WEBHOOK_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares: a few services, each built once.
#[derive(Debug)]
pub struct AppState {
    /// The attach path: tokens, Asana, the context source, retries, layout.
    pub attacher: Attacher,
    /// Longest a client waits for an attach (it runs on to its end regardless).
    pub request_deadline: Duration,
    /// The shared store.
    pub store: Store,
    /// Posted comments on their way to the store (taken by the writer when the server starts).
    pub posted_queue:
        std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::store::PostedStory>>>,
    /// `Idempotency-Key` claims and outcomes (also used for webhook events).
    pub idempotency: Idempotency,
    /// Registered webhooks and their secrets (shared with the attacher).
    pub hooks: Arc<HookStore>,
    /// Webhook events in the store, waiting for a worker on any replica.
    pub webhook_jobs: Jobs,
    /// Personal API keys.
    pub keys: PersonalKeys,
    /// `ALLOWED_WORKSPACES`: whose consent is accepted.
    pub allowed_workspaces: crate::domain::AllowedWorkspaces,
    /// Webhook rules from `WEBHOOK_RULES_PATH`.
    pub webhook_rules: Rules,
    /// Cached readiness checks.
    pub readiness: Readiness,
    /// Who may call the API.
    pub access: AccessPolicy,
    /// Asana's OAuth endpoints; `None` until the OAuth settings are complete.
    pub oauth: Option<AsanaOAuth>,
    /// Which OAuth settings are missing, for error messages.
    pub missing_oauth: Vec<&'static str>,
    /// Consents started and not yet finished.
    pub consents: PendingConsents,
    /// `PUBLIC_URL` without its trailing slash, for the examples the home page shows.
    pub public_url: String,
    /// Whether cookies get `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Cancelled at shutdown: ends `/mcp`'s open streams and sessions.
    pub mcp_stop: tokio_util::sync::CancellationToken,
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
    /// The store cannot be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
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
        crate::telemetry::metrics::install();
        // One client for every upstream. It follows no redirects: the token endpoint must not
        // (oauth2-rs: SSRF), and neither Asana's API nor the context server needs them.
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("mcp-asana-linker/", env!("CARGO_PKG_VERSION")));
        if !proxy_configured() {
            // Without a proxy setting every request goes direct anyway; saying so spares each
            // request reqwest's NO_PROXY check of its host.
            http = http.no_proxy();
        }
        let http = http.build().map_err(StartupError::HttpClient)?;
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
        let store =
            Store::open_and_migrate(&settings.database_url, settings.store_sealer.clone()).await?;
        // This process, as the owner of the claims and leases it takes in the store.
        let owner = crate::util::random::hex_id();
        let connections = Arc::new(
            Connections::load(
                TokenSettings {
                    store: store.clone(),
                    owner: owner.clone(),
                    oauth: oauth.clone(),
                    missing_oauth: settings.missing_oauth.clone(),
                    retry: settings.retry,
                },
                settings.token_store_path.clone(),
            )
            .await?,
        );
        // Key journals of an earlier version, kept beside its token file.
        let legacy = |name: &str| settings.token_store_path.with_file_name(name);
        // Keys are per connection; those of an earlier version were the default one's.
        let scope = store
            .connected_users()
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        for journal in ["idempotency_keys.jsonl", "webhook_seen.jsonl"] {
            crate::idempotency::import_journal(&store, &legacy(journal), &scope).await?;
        }
        let (posted, posted_queue) = crate::service::posted::PostedLog::new();
        let webhook_jobs = Jobs::new(
            store.clone(),
            owner.clone(),
            settings.request_deadline,
            settings.asana_timeout,
        );
        let idempotency = Idempotency::new(
            store.clone(),
            owner,
            settings.request_deadline,
            settings.asana_timeout,
            settings.request_deadline.mul_f32(0.8),
        );
        let webhook_rules = match &settings.webhook_rules_path {
            Some(path) => Rules::load(path)?,
            None => Rules::default(),
        };
        // Kept beside the legacy token file until hooks move into the store.
        let hooks = Arc::new(HookStore::load(store.clone(), &legacy("webhooks.json")).await?);
        let asana = Arc::new(AsanaClient::new(
            http.clone(),
            &settings.asana_api_base_url,
            settings.asana_timeout,
            settings.asana_max_concurrent_writes,
            settings.retry.budget.min(settings.request_deadline),
        ));
        let context = settings.context_server.as_ref().map(|server| {
            Arc::new(ContextSource::new(
                server,
                settings.mcp_auth_token.clone(),
                http.clone(),
                settings.mcp_timeout,
                settings.retry,
            ))
        });
        Ok(Self {
            attacher: Attacher {
                connections,
                asana,
                context,
                retry: settings.retry,
                comments: CommentSettings {
                    header: settings.comment_header,
                    header_hosts: settings.comment_header_hosts,
                    max_chars: settings.asana_comment_max_chars,
                    max_parts: settings.max_comment_parts,
                },
                rendered: RenderCache::default(),
                missing: settings.missing_oauth.clone(),
                hooks: Arc::clone(&hooks),
                store: store.clone(),
                posted,
            },
            request_deadline: settings.request_deadline,
            hooks,
            webhook_jobs,
            webhook_rules,
            readiness: Readiness::new(store.clone()),
            access: AccessPolicy::new(settings),
            idempotency,
            oauth,
            missing_oauth: settings.missing_oauth.clone(),
            consents: PendingConsents::load(store.clone()).await?,
            keys: PersonalKeys::new(store.clone()),
            allowed_workspaces: settings.allowed_workspaces.clone(),
            store,
            posted_queue: std::sync::Mutex::new(Some(posted_queue)),
            secure_cookies: settings.public_url.scheme() == "https",
            mcp_stop: tokio_util::sync::CancellationToken::new(),
            public_url: settings
                .public_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
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
        .merge(crate::mcp_server::router(Arc::clone(&state)))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(layers)
        .with_state(state)
}

/// Every route with its OpenAPI description: the document is built from the same list the
/// router is, so the two cannot drift.
pub fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::home::home))
        .routes(routes!(routes::home::new_key))
        .routes(routes!(routes::home::disconnect))
        .routes(routes!(routes::home::style))
        .routes(routes!(routes::home::script))
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
    header_timeout: Duration,
    workers: Vec<tokio::task::JoinHandle<()>>,
    stop_workers: tokio::sync::watch::Sender<bool>,
    state: Arc<AppState>,
}

impl Application {
    /// Binds `HOST:PORT` and builds the state; logs what is not configured yet.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let state = AppState::build(settings).await?;
        if settings.database_url.engine() == crate::store::Engine::Sqlite {
            // One server per SQLite file: a lease left by the previous one (killed while
            // refreshing or handling a webhook event) would otherwise hold it until it expires.
            state.store.clear_leases().await?;
        }
        if !state.access.has_key() {
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
        let mut workers = spawn_workers(Arc::clone(&state), stop.clone());
        workers.push(crate::store::spawn_pruner(
            state.store.clone(),
            crate::idempotency::KEY_TTL,
            stop.clone(),
        ));
        let queue = state
            .posted_queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(queue) = queue {
            workers.push(crate::service::posted::spawn(
                state.store.clone(),
                queue,
                stop.clone(),
            ));
        }
        workers.push(crate::service::shared::spawn(
            state.store.clone(),
            Arc::clone(&state.attacher.asana),
            Arc::clone(&state.hooks),
            Arc::clone(&state.attacher.connections),
            stop,
        ));
        Ok(Self {
            listener,
            router: router(Arc::clone(&state)),
            state,
            shutdown_grace: settings.shutdown_grace,
            header_timeout: settings.http_header_timeout,
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
        let mcp_stop = self.state.mcp_stop.clone();
        let signal = async move {
            shutdown.await;
            // Open MCP streams would otherwise hold their connections to the end of the grace.
            mcp_stop.cancel();
            let _ = stopping.send(true);
        };
        let server = serve(self.listener, self.router, self.header_timeout, signal);
        let upkeep = crate::telemetry::metrics::spawn_upkeep();
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

/// Accepts connections until `signal`, then lets each finish its request in flight. Every
/// connection must deliver a request's headers within `header_timeout` of opening or of its
/// previous response (hyper's timer counts both), so neither a half-sent header nor an idle
/// kept-alive connection holds a file descriptor for long.
async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // pause briefly rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: axum::http::Request<_>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Whether a proxy may apply to outbound requests: a proxy variable is set, or the platform
/// has a system proxy configuration that reqwest reads (everywhere but Linux).
fn proxy_configured() -> bool {
    !cfg!(target_os = "linux")
        || [
            "ALL_PROXY",
            "all_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
        ]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
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

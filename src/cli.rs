//! The command line: `serve` (default), `attach`, `authorize`, `check`, `connections`, `keys`,
//! `webhooks`, `store`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::{self, AppState, Application};
use crate::asana::Marker;
use crate::config::Settings;
use crate::domain::{AttachRequest, AttachRequestBody};
use crate::http::error::ApiError;
use crate::render::Format;
use crate::service::attach::Written;
use crate::store::Store;
use crate::util::cause_chain;
use crate::webhooks::admin;

/// Posts named contexts from an MCP server into Asana tasks.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Attach a context to a task once, with the stored token, and print where it went.
    Attach {
        /// Gid of the task.
        #[arg(long)]
        task: String,
        /// Name or URI of the context.
        #[arg(long)]
        context: String,
        /// markdown, plain or code.
        #[arg(long)]
        format: Option<String>,
        /// Whose connection posts (Asana user gid or email); the default connection if omitted.
        #[arg(long = "as")]
        acting_as: Option<String>,
    },
    /// Serve the MCP tools over stdin/stdout (for hosts that start servers as commands),
    /// acting as the store's default connection; logs go to stderr.
    Mcp,
    /// Print the consent URL and serve until someone has connected Asana.
    Authorize,
    /// Check settings, the Asana token and both upstreams; the exit code says what is wrong.
    Check,
    /// List the people connected, mark the default one, disconnect one.
    Connections {
        /// What to do with connections.
        #[command(subcommand)]
        command: ConnectionCommand,
    },
    /// Issue personal API keys.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage Asana webhooks with the stored OAuth token.
    Webhooks {
        /// What to do with webhooks.
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Look after the store (`DATABASE_URL`).
    Store {
        /// What to do with the store.
        #[command(subcommand)]
        command: StoreCommand,
    },
}

/// Connection subcommands.
#[derive(Subcommand)]
pub enum ConnectionCommand {
    /// Every connection: user, email, state, last use of a key, and which is the default.
    List,
    /// Make USER's connection the one that acts when nobody is named.
    Default {
        /// Asana user gid or email.
        user: String,
    },
    /// Disconnect USER: their tokens are deleted and their keys stop working.
    Revoke {
        /// Asana user gid or email.
        user: String,
    },
}

/// Key subcommands.
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Issue a new personal key acting as USER (printed once; earlier keys keep working).
    Create {
        /// Asana user gid or email.
        #[arg(long = "as")]
        user: String,
    },
}

/// Store subcommands.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Apply the migrations not applied yet, and exit.
    Migrate,
    /// Connect, and print the engine, the schema version and the rows per table.
    Check,
    /// Write a consistent copy of an SQLite store while the service runs.
    Backup {
        /// The new file to write.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Write the default connection's tokens to TOKEN_STORE_PATH in the file format of the
    /// earlier, file-based version (for a rollback to it).
    Export,
}

/// Webhook subcommands.
#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Register a webhook; the service must be running and reachable at --target. Its rules
    /// act as the connection that registers it.
    Register {
        /// Gid of the project, task or tag to watch.
        #[arg(long)]
        resource: String,
        /// The service's public base URL, e.g. https://x.ngrok.app.
        #[arg(long)]
        target: String,
        /// Whose connection registers it (Asana user gid or email); the default one if omitted.
        #[arg(long = "as")]
        acting_as: Option<String>,
    },
    /// List the webhooks of a workspace.
    List {
        /// Gid of the workspace.
        #[arg(long)]
        workspace: String,
        /// Whose connection lists them (Asana user gid or email); the default one if omitted.
        #[arg(long = "as")]
        acting_as: Option<String>,
    },
    /// Delete a webhook.
    Delete {
        /// Gid of the webhook.
        #[arg(long)]
        webhook: String,
        /// Whose connection deletes it (Asana user gid or email); the default one if omitted.
        #[arg(long = "as")]
        acting_as: Option<String>,
    },
}

/// Exit codes of `check` (and of the other commands where they apply).
pub mod exit {
    /// A setting is malformed.
    pub const INVALID_SETTINGS: u8 = 2;
    /// A setting the service needs is missing.
    pub const NOT_CONFIGURED: u8 = 3;
    /// No usable Asana token: authorize.
    pub const NOT_CONNECTED: u8 = 4;
    /// The context server cannot be reached.
    pub const CONTEXT_UNREACHABLE: u8 = 5;
    /// Asana cannot be reached or refuses the token.
    pub const ASANA_UNREACHABLE: u8 = 6;
    /// The store cannot be opened or queried.
    pub const STORE_UNAVAILABLE: u8 = 7;
}

/// Runs the command with the loaded settings.
pub async fn run(command: Command, settings: &Settings) -> ExitCode {
    match command {
        Command::Serve => serve(settings).await,
        Command::Attach {
            task,
            context,
            format,
            acting_as,
        } => attach(settings, task, context, format, acting_as).await,
        Command::Connections { command } => connections(settings, command).await,
        Command::Keys { command } => keys(settings, command).await,
        Command::Mcp => mcp_stdio(settings).await,
        Command::Authorize => authorize(settings).await,
        Command::Check => check(settings).await,
        Command::Webhooks { command } => webhooks(settings, command).await,
        Command::Store { command } => store(settings, command).await,
    }
}

async fn store(settings: &Settings, command: StoreCommand) -> ExitCode {
    let url = &settings.database_url;
    let sealer = settings.store_sealer.clone();
    let opened = match command {
        StoreCommand::Migrate => Store::open_and_migrate(url, sealer).await,
        StoreCommand::Check => Store::open(url, sealer).await,
        StoreCommand::Backup { to } => {
            return match backup(url, sealer, &to).await {
                Ok(()) => {
                    println!("✓ store {url} copied to {}", to.display());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    println!("✗ store backup: {}", cause_chain(&error));
                    ExitCode::from(exit::STORE_UNAVAILABLE)
                }
            };
        }
        StoreCommand::Export => return export(settings).await,
    };
    let report = match opened {
        Ok(store) => store.report().await,
        Err(error) => Err(error),
    };
    match report {
        Ok(report) => {
            println!("✓ store: {}", describe(url, &report));
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("✗ store {url}: {}", cause_chain(&error));
            ExitCode::from(exit::STORE_UNAVAILABLE)
        }
    }
}

async fn backup(
    url: &crate::store::DatabaseUrl,
    sealer: crate::store::Sealer,
    to: &std::path::Path,
) -> Result<(), crate::store::StoreError> {
    Store::open(url, sealer).await?.backup(to).await
}

async fn export(settings: &Settings) -> ExitCode {
    let file = crate::asana::TokenFile::new(settings.token_store_path.clone());
    let tokens = match Store::open(&settings.database_url, settings.store_sealer.clone()).await {
        Ok(store) => store.default_connection().await,
        Err(error) => Err(error),
    };
    let tokens = match tokens {
        Ok(Some(tokens)) => tokens,
        Ok(None) => {
            println!("✗ store export: no connection to export");
            return ExitCode::from(exit::NOT_CONNECTED);
        }
        Err(error) => {
            println!("✗ store export: {}", cause_chain(&error));
            return ExitCode::from(exit::STORE_UNAVAILABLE);
        }
    };
    match file.save(&tokens).await {
        Ok(()) => {
            println!(
                "✓ tokens of {} written to {} (mode 0600) for the file-based version",
                tokens.user.name,
                file.path().display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(cause_chain(&error)),
    }
}

/// One line about the store: where, which engine, schema version, rows per table.
fn describe(url: &crate::store::DatabaseUrl, report: &crate::store::Report) -> String {
    let rows: Vec<String> = report
        .rows
        .iter()
        .map(|(table, count)| format!("{table} {count}"))
        .collect();
    format!(
        "{} at {url}, schema version {}; rows: {}",
        report.engine,
        report.schema_version,
        rows.join(", ")
    )
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("mcp-asana-linker: {message}");
    ExitCode::FAILURE
}

async fn state(settings: &Settings) -> Result<AppState, ExitCode> {
    AppState::build(settings).await.map_err(fail)
}

/// The MCP tools over stdio until the host closes stdin; what was posted is recorded before
/// it exits.
async fn mcp_stdio(settings: &Settings) -> ExitCode {
    use rmcp::ServiceExt;

    let state = match state(settings).await {
        Ok(state) => Arc::new(state),
        Err(code) => return code,
    };
    let tools = crate::mcp_server::LinkerTools::for_stdio(Arc::clone(&state));
    let served = match tools.serve(rmcp::transport::stdio()).await {
        Ok(running) => running
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    record_posted(&state).await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(format!("the MCP session over stdio failed: {error}")),
    }
}

/// Writes the comments a one-shot command posted to the store before it exits (it runs no
/// writer task).
async fn record_posted(state: &AppState) {
    let queue = state
        .posted_queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(mut queue) = queue {
        crate::service::posted::flush(&state.store, &mut queue).await;
    }
}

async fn serve(settings: &Settings) -> ExitCode {
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(error) => return fail(error),
    };
    match application.run_until(app::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

/// Opens the store for a command that reads or changes connections (importing the token
/// file of an earlier version, as the server does at start).
async fn open_store(settings: &Settings) -> Result<Store, ExitCode> {
    let opened = async {
        let store =
            Store::open_and_migrate(&settings.database_url, settings.store_sealer.clone()).await?;
        let file = crate::asana::TokenFile::new(settings.token_store_path.clone());
        crate::asana::import_token_file(&store, file).await?;
        Ok::<_, crate::store::StoreError>(store)
    };
    opened.await.map_err(|error| {
        println!("✗ store {}: {}", settings.database_url, cause_chain(&error));
        ExitCode::from(exit::STORE_UNAVAILABLE)
    })
}

/// The gid of the connection `who` names, or the exit code that says it is unknown.
async fn find_user(store: &Store, who: &str) -> Result<String, ExitCode> {
    match store.find_user(who).await {
        Ok(Some(user_gid)) => Ok(user_gid),
        Ok(None) => {
            println!("✗ no connection is named {who} (see `connections list`)");
            Err(ExitCode::from(exit::NOT_CONNECTED))
        }
        Err(error) => {
            println!("✗ store: {}", cause_chain(&error));
            Err(ExitCode::from(exit::STORE_UNAVAILABLE))
        }
    }
}

async fn connections(settings: &Settings, command: ConnectionCommand) -> ExitCode {
    let store = match open_store(settings).await {
        Ok(store) => store,
        Err(code) => return code,
    };
    let done = match command {
        ConnectionCommand::List => match store.list_connections().await {
            Ok(listed) => {
                println!("USER\tNAME\tEMAIL\tSTATE\tLAST USED\tDEFAULT");
                for c in listed {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        c.user_gid,
                        c.name,
                        c.email.as_deref().unwrap_or("-"),
                        c.state.as_str(),
                        c.last_used_at
                            .map_or_else(|| "-".to_owned(), crate::util::time::iso),
                        if c.is_default { "default" } else { "" }
                    );
                }
                Ok(())
            }
            Err(error) => Err(error),
        },
        ConnectionCommand::Default { user } => {
            let user_gid = match find_user(&store, &user).await {
                Ok(user_gid) => user_gid,
                Err(code) => return code,
            };
            match store.set_default(&user_gid).await {
                Ok(true) => {
                    println!("✓ {user} is the default connection");
                    Ok(())
                }
                Ok(false) => {
                    println!("✗ {user} is not connected; only a connected user can be the default");
                    return ExitCode::from(exit::NOT_CONNECTED);
                }
                Err(error) => Err(error),
            }
        }
        ConnectionCommand::Revoke { user } => {
            let user_gid = match find_user(&store, &user).await {
                Ok(user_gid) => user_gid,
                Err(code) => return code,
            };
            store.disconnect(&user_gid).await.map(|()| {
                println!(
                    "✓ {user} disconnected: tokens deleted, keys revoked (every replica within seconds); the grant stays listed in their Asana account's apps until they remove it there"
                );
            })
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            println!("✗ store: {}", cause_chain(&error));
            ExitCode::from(exit::STORE_UNAVAILABLE)
        }
    }
}

async fn keys(settings: &Settings, command: KeyCommand) -> ExitCode {
    let store = match open_store(settings).await {
        Ok(store) => store,
        Err(code) => return code,
    };
    let KeyCommand::Create { user } = command;
    let user_gid = match find_user(&store, &user).await {
        Ok(user_gid) => user_gid,
        Err(code) => return code,
    };
    if !matches!(store.connection(&user_gid).await, Ok(Some(_))) {
        println!("✗ {user} is not connected; a key needs a connection to act as");
        return ExitCode::from(exit::NOT_CONNECTED);
    }
    match crate::service::keys::PersonalKeys::new(store)
        .issue(&user_gid)
        .await
    {
        Ok(issued) => {
            // The one place a key is ever shown: stdout, for the operator to hand over.
            println!("{}", secrecy::ExposeSecret::expose_secret(&issued.key));
            eprintln!(
                "✓ key {}… acts as {user}; it is shown once and only its hash is kept",
                issued.prefix
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("✗ store: {}", cause_chain(&error));
            ExitCode::from(exit::STORE_UNAVAILABLE)
        }
    }
}

async fn attach(
    settings: &Settings,
    task: String,
    context: String,
    format: Option<String>,
    acting_as: Option<String>,
) -> ExitCode {
    let format = match format
        .as_deref()
        .map(|f| serde_json::from_value::<Format>(f.into()))
    {
        None => None,
        Some(Ok(format)) => Some(format),
        Some(Err(_)) => return fail("--format must be markdown, plain or code"),
    };
    let body = AttachRequestBody {
        task_gid: task,
        context_name: context,
        arguments: Default::default(),
        format,
        target: None,
        pin: false,
        footer: false,
        acting_as: None,
    };
    let request = match AttachRequest::try_from(body) {
        Ok(request) => request,
        // Named as the command line names them, not as the JSON body does.
        Err(error) => {
            return fail(
                error
                    .0
                    .replace("task_gid", "--task")
                    .replace("context_name", "--context"),
            );
        }
    };
    let state = match state(settings).await {
        Ok(state) => state,
        Err(code) => return code,
    };
    if let Err(error) = state.attacher.configured() {
        let error = ApiError::from(error);
        return fail(format!("{error} ({})", error.code()));
    }
    let acting = match acting(&state, acting_as.as_deref()).await {
        Ok(acting) => acting,
        Err(code) => return code,
    };
    let attached = state
        .attacher
        .attach(&acting, &request, &Marker::random(), false)
        .await;
    // Whatever was posted, even by an attach that failed later, is recorded before exit.
    record_posted(&state).await;
    match attached {
        Ok(attached) => {
            if let Written::Comments { story_gids, .. } = &attached.written {
                for gid in story_gids {
                    println!(
                        "posted story {gid}: {}",
                        crate::asana::story_url(&attached.task_gid, gid)
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(failed) => {
            let cause = cause_chain(&failed.error);
            let error = ApiError::from(failed.error);
            fail(format!("{error} ({}): {cause}", error.code()))
        }
    }
}

async fn authorize(settings: &Settings) -> ExitCode {
    let Some(oauth) = &settings.oauth_app else {
        eprintln!(
            "mcp-asana-linker: OAuth is not configured: set {}",
            settings.missing_oauth.join(", ")
        );
        return ExitCode::from(exit::NOT_CONFIGURED);
    };
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(error) => return fail(error),
    };
    let shared = application.state();
    let watched = Arc::clone(&shared);
    let mut start = oauth.redirect_uri.clone();
    start.set_path("/asana/oauth/authorize");
    start.set_query(None);
    println!("Open this URL in the browser you use for Asana:\n\n  {start}\n");
    println!("Waiting for the consent (Ctrl-C to stop)…");
    let connected = async move {
        let signal = app::shutdown_signal();
        let wait = async {
            while watched.attacher.connections.default_user().is_none() {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::select! {
            () = signal => {},
            () = wait => {},
        }
    };
    if let Err(error) = application.run_until(connected).await {
        return fail(error);
    }
    match shared.attacher.connections.default_user() {
        Some(user) => {
            println!("Connected to Asana as {}.", user.name);
            ExitCode::SUCCESS
        }
        None => ExitCode::from(exit::NOT_CONNECTED),
    }
}

/// Checks everything and reports each result; exits with the code of the first failure.
async fn check(settings: &Settings) -> ExitCode {
    let state = match state(settings).await {
        Ok(state) => state,
        Err(code) => return code,
    };
    let mut first_failure: Option<u8> = None;
    let mut failed = |code: u8, line: String| {
        println!("✗ {line}");
        first_failure.get_or_insert(code);
    };
    let mut missing: Vec<&str> = settings.missing_oauth.clone();
    if settings.context_server.is_none() {
        missing.push("MCP_SERVER_URL or MCP_SERVER_COMMAND");
    }
    if missing.is_empty() {
        println!("✓ settings");
    } else {
        failed(
            exit::NOT_CONFIGURED,
            format!("settings: missing {}", missing.join(", ")),
        );
    }
    match state.store.report().await {
        Ok(report) => {
            println!("✓ store: {}", describe(&settings.database_url, &report));
            if let Ok(counts) =
                crate::service::readiness::ConnectionCounts::read(&state.store).await
            {
                println!(
                    "✓ connections: {} healthy, {} expired, {} revoked",
                    counts.healthy, counts.expired, counts.revoked
                );
            }
        }
        Err(error) => failed(
            exit::STORE_UNAVAILABLE,
            format!("store {}: {}", settings.database_url, cause_chain(&error)),
        ),
    }
    let token = match state.attacher.connections.default().await {
        Ok(acting) => acting.access_token().await,
        Err(error) => Err(error),
    };
    match token {
        Ok(token) => match state.attacher.asana.me(&token).await {
            Ok(user) => println!("✓ Asana: connected as {}", user.name),
            Err(error) => failed(
                exit::ASANA_UNREACHABLE,
                format!("Asana: {}", cause_chain(&error)),
            ),
        },
        Err(error) => failed(
            exit::NOT_CONNECTED,
            format!(
                "Asana token: {}; run `mcp-asana-linker authorize` to connect",
                cause_chain(&error)
            ),
        ),
    }
    match &state.attacher.context {
        Some(source) => match source.probe().await {
            Ok(()) => println!("✓ context server reachable"),
            Err(error) => failed(
                exit::CONTEXT_UNREACHABLE,
                format!("context server: {}", cause_chain(&error)),
            ),
        },
        None => println!("- context server: not configured"),
    }
    match first_failure {
        None => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(code),
    }
}

/// The connection `--as` names, else the default one; the exit code when there is none.
async fn acting(
    state: &AppState,
    acting_as: Option<&str>,
) -> Result<Arc<crate::asana::TokenManager>, ExitCode> {
    let found = match acting_as {
        Some(who) => state.attacher.connections.find(who).await,
        None => state.attacher.connections.default().await,
    };
    found.map_err(|error| {
        eprintln!("mcp-asana-linker: {error}");
        ExitCode::from(exit::NOT_CONNECTED)
    })
}

async fn webhooks(settings: &Settings, command: WebhookCommand) -> ExitCode {
    let state = match state(settings).await {
        Ok(state) => state,
        Err(code) => return code,
    };
    let acting_as = match &command {
        WebhookCommand::Register { acting_as, .. }
        | WebhookCommand::List { acting_as, .. }
        | WebhookCommand::Delete { acting_as, .. } => acting_as.clone(),
    };
    let acting = match acting(&state, acting_as.as_deref()).await {
        Ok(acting) => acting,
        Err(code) => return code,
    };
    let outcome = match command {
        WebhookCommand::Register {
            resource, target, ..
        } => admin::register(&state, &acting, &resource, &target)
            .await
            .map(|r| {
                println!(
                    "registered webhook {} on resource {resource}: events go to {} (hook id {})",
                    r.webhook_gid, r.target, r.hook_id
                );
            }),
        WebhookCommand::List { workspace, .. } => {
            admin::list(&state, &acting, &workspace).await.map(|hooks| {
                for hook in &hooks {
                    println!(
                        "{}\t{}\t{}",
                        hook.gid,
                        if hook.active.unwrap_or(false) {
                            "active"
                        } else {
                            "inactive"
                        },
                        hook.target.as_deref().unwrap_or("-")
                    );
                }
                println!("{} webhook(s) in workspace {workspace}", hooks.len());
            })
        }
        WebhookCommand::Delete { webhook, .. } => admin::delete(&state, &acting, &webhook)
            .await
            .map(|()| println!("deleted webhook {webhook}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(cause_chain(&error)),
    }
}

//! Entry point: parse the command line, load settings, start logging, run the command.

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_asana_linker::webhooks::admin;
use mcp_asana_linker::{AppState, Application, Settings, app, telemetry};

/// Posts named contexts from an MCP server into Asana tasks.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Manage Asana webhooks with the stored OAuth token.
    Webhooks {
        #[command(subcommand)]
        command: WebhookCommand,
    },
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// Register a webhook; the service must be running and reachable at --target.
    Register {
        /// Gid of the project, task or tag to watch.
        #[arg(long)]
        resource: String,
        /// The service's public base URL, e.g. https://x.ngrok.app.
        #[arg(long)]
        target: String,
    },
    /// List the webhooks of a workspace.
    List {
        /// Gid of the workspace.
        #[arg(long)]
        workspace: String,
    },
    /// Delete a webhook.
    Delete {
        /// Gid of the webhook.
        #[arg(long)]
        webhook: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(Path::new(".")) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("mcp-asana-linker: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = telemetry::init(settings.log_format, &settings.rust_log) {
        eprintln!("mcp-asana-linker: {error}");
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&settings).await,
        Command::Webhooks { command } => webhooks(&settings, command).await,
    }
}

async fn serve(settings: &Settings) -> ExitCode {
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            eprintln!("mcp-asana-linker: {error}");
            return ExitCode::FAILURE;
        }
    };
    match application.run_until(app::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn webhooks(settings: &Settings, command: WebhookCommand) -> ExitCode {
    let state = match AppState::build(settings).await {
        Ok(state) => state,
        Err(error) => {
            eprintln!("mcp-asana-linker: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match command {
        WebhookCommand::Register { resource, target } => {
            admin::register(&state, &resource, &target).await.map(|r| {
                println!(
                    "registered webhook {} on resource {resource}: events go to {} (hook id {})",
                    r.webhook_gid, r.target, r.hook_id
                );
            })
        }
        WebhookCommand::List { workspace } => admin::list(&state, &workspace).await.map(|hooks| {
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
        }),
        WebhookCommand::Delete { webhook } => admin::delete(&state, &webhook)
            .await
            .map(|()| println!("deleted webhook {webhook}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "mcp-asana-linker: {}",
                mcp_asana_linker::error::cause_chain(&error)
            );
            ExitCode::FAILURE
        }
    }
}

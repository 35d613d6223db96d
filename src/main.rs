//! Entry point: parse the command line, load settings, start logging, serve.

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_asana_linker::{Application, Settings, app, telemetry};

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

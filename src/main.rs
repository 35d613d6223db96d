//! Entry point: parse the command line, load settings, start logging, run the command.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use mcp_asana_linker::cli::{self, Cli, Command};
use mcp_asana_linker::{Settings, telemetry};

#[global_allocator]
static ALLOCATOR: mcp_asana_linker::allocator::Allocator = mcp_asana_linker::allocator::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    // Where the kernel backs memory with transparent huge pages by default, every 2 MiB
    // region mimalloc touches becomes resident whole: peak RSS under load measured 35 MB
    // with them, 23 MB without, and no change in throughput.
    let _ = nix::sys::prctl::set_thp_disable(true);
    let cli = Cli::parse();
    let settings = match Settings::load(Path::new(".")) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("mcp-asana-linker: {error}");
            return ExitCode::from(cli::exit::INVALID_SETTINGS);
        }
    };
    let _flush_logs_at_exit = match telemetry::init(settings.log_format, &settings.rust_log) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("mcp-asana-linker: {error}");
            return ExitCode::from(cli::exit::INVALID_SETTINGS);
        }
    };
    for key in &settings.unknown_keys {
        tracing::warn!(key = %key, "unknown setting ignored");
    }
    cli::run(cli.command.unwrap_or(Command::Serve), &settings).await
}

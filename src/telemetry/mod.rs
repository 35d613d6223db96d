//! Telemetry: the tracing subscriber (pretty or JSON), request ids, the per-request layer,
//! and Prometheus metrics.

mod format;
pub mod log_writer;
pub mod metrics;
pub mod observe;
pub mod request_id;

use std::io::IsTerminal;

pub use log_writer::LogGuard;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// A `RUST_LOG` value that is not a valid filter.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting RUST_LOG={directives:?}: {source}")]
pub struct TelemetryError {
    directives: String,
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the global subscriber writing to stderr through the non-blocking writer; keep
/// the guard until exit so queued lines are flushed. Colour only on a terminal. rmcp logs
/// nothing unless `RUST_LOG` names it: its messages are protocol details for its developers
/// (a refused connection is an ERROR with a debug dump there), and the linker reports what
/// matters about the context server itself.
pub fn init(format: LogFormat, directives: &str) -> Result<LogGuard, TelemetryError> {
    let directives = if directives.contains("rmcp") {
        directives.to_owned()
    } else {
        format!("{directives},rmcp=off")
    };
    let filter = EnvFilter::try_new(&directives).map_err(|source| TelemetryError {
        directives: directives.clone(),
        source,
    })?;
    let (writer, guard) = log_writer::spawn(std::io::stderr());
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .event_format(format::LineFormat {
            json: format == LogFormat::Json,
        })
        .try_init();
    Ok(guard)
}

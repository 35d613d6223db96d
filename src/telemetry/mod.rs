//! Telemetry: the tracing subscriber (pretty or JSON), request ids, the per-request layer,
//! and Prometheus metrics.

pub mod metrics;
pub mod observe;
pub mod request_id;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// A `RUST_LOG` value that is not a valid filter.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting RUST_LOG={directives:?}: {source}")]
pub struct TelemetryError {
    directives: String,
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the global subscriber writing to stderr.
pub fn init(format: LogFormat, directives: &str) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(directives).map_err(|source| TelemetryError {
        directives: directives.to_owned(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

//! Logging: the tracing subscriber (pretty or JSON) and the per-request span.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;
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

type MakeSpan = fn(&Request<Body>) -> Span;
type OnResponse = fn(&Response<Body>, Duration, &Span);

/// One span per request with method and path (never the query, which may carry an OAuth
/// code, and never headers), and one line when the response is sent.
pub fn trace_layer()
-> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, MakeSpan, (), OnResponse> {
    TraceLayer::new_for_http()
        .make_span_with(request_span as MakeSpan)
        .on_request(())
        .on_response(log_response as OnResponse)
}

fn request_span(request: &Request<Body>) -> Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %crate::request_id::of(request),
    )
}

fn log_response(response: &Response<Body>, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "response"
    );
}

//! Prometheus metrics: request counts and latencies per route and status, upstream calls per
//! target and outcome, retries, refreshes, 429s seen, stories posted.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use metrics::SharedString;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The process-wide recorder. The `metrics` facade has exactly one recorder per process, so
/// every service in the process (tests run several) shares it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours records nothing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Counts and times one request by matched route, method and status.
pub fn request(route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
    let route = SharedString::from(route.to_owned());
    let method = method_label(method);
    metrics::counter!("linker_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status.as_str().to_owned())
        .increment(1);
    metrics::histogram!("linker_http_request_duration_seconds", "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
}

/// The method as a static label (no allocation for the methods the API has).
fn method_label(method: &Method) -> SharedString {
    match *method {
        Method::GET => SharedString::const_str("GET"),
        Method::POST => SharedString::const_str("POST"),
        Method::DELETE => SharedString::const_str("DELETE"),
        _ => SharedString::from(method.as_str().to_owned()),
    }
}

/// Counts one call to an upstream (`asana`, `token`, `context`, `mcp`) by outcome.
pub fn upstream(target: &'static str, outcome: &str) {
    metrics::counter!("linker_upstream_calls_total", "target" => target, "outcome" => outcome.to_owned())
        .increment(1);
}

/// Counts one retry.
pub fn retry() {
    metrics::counter!("linker_retries_total").increment(1);
}

/// Counts one token refresh by outcome (`ok`, `refused`, `failed`).
pub fn refresh(outcome: &'static str) {
    metrics::counter!("linker_token_refreshes_total", "outcome" => outcome).increment(1);
}

/// Counts one 429 from Asana.
pub fn rate_limited() {
    metrics::counter!("linker_asana_rate_limited_total").increment(1);
}

/// Counts one story posted.
pub fn story_posted() {
    metrics::counter!("linker_stories_posted_total").increment(1);
}

/// The outcome label of an HTTP status.
pub fn status_outcome(status: u16) -> String {
    match status {
        200..=299 => "ok".to_owned(),
        _ => status.to_string(),
    }
}

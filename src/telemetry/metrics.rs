//! Prometheus metrics: request counts and latencies per route and status, upstream calls per
//! target and outcome, retries, refreshes, 429s seen, stories posted.

use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The process-wide recorder. The `metrics` facade has exactly one recorder per process, so
/// every service in the process (tests run several) shares it.
pub fn handle() -> PrometheusHandle {
    install().clone()
}

/// Installs the recorder if no one has yet: at start, so nothing recorded before the first
/// scrape is lost.
pub fn install() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Fails only if another recorder is installed, in which case ours records nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds histogram samples into buckets every few seconds. The recorder keeps every sample
/// until then (or until a scrape), so without this a server nobody scrapes grows by every
/// request it answers.
pub fn spawn_upkeep() -> tokio::task::JoinHandle<()> {
    let handle = install();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    })
}

/// Handles already registered, found by their label values. The `metrics` macros build and
/// hash a key per call, and the attach path records four series per request. The label
/// values are bounded (routes, methods, statuses, targets, outcomes), and so is this list.
struct Registered<K, V> {
    entries: RwLock<Vec<(K, V)>>,
}

impl<K, V: Clone> Registered<K, V> {
    const fn new() -> Self {
        Self {
            entries: RwLock::new(Vec::new()),
        }
    }

    /// The handle whose key `matches`, registering one with `make` the first time.
    fn get(&self, matches: impl Fn(&K) -> bool, make: impl FnOnce() -> (K, V)) -> V {
        let found = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(key, _)| matches(key))
            .map(|(_, handle)| handle.clone());
        if let Some(handle) = found {
            return handle;
        }
        // A handle made before the recorder is installed would record nothing, forever.
        install();
        let (key, handle) = make();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have registered it meanwhile; a duplicate entry is harmless.
        entries.push((key, handle.clone()));
        handle
    }
}

/// Counts and times one request by matched route, method and status.
pub fn request(route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
    static SERIES: Registered<(String, &'static str, StatusCode), (Counter, Histogram)> =
        Registered::new();
    let method = method_label(method);
    let (count, duration) = SERIES.get(
        |(r, m, s)| *s == status && *m == method && r == route,
        || {
            let count = metrics::counter!("linker_http_requests_total",
                "route" => route.to_owned(), "method" => method, "status" => status.as_str().to_owned());
            let duration = metrics::histogram!("linker_http_request_duration_seconds",
                "route" => route.to_owned(), "method" => method);
            ((route.to_owned(), method, status), (count, duration))
        },
    );
    count.increment(1);
    duration.record(elapsed.as_secs_f64());
}

/// The method label: methods outside the HTTP standard set are counted as `other`, so a client
/// cannot grow the series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts one call to an upstream (`asana`, `token`, `context`, `mcp`) by outcome.
pub fn upstream(target: &'static str, outcome: &str) {
    static SERIES: Registered<(&'static str, String), Counter> = Registered::new();
    SERIES
        .get(
            |(t, o)| *t == target && o == outcome,
            || {
                let counter = metrics::counter!("linker_upstream_calls_total",
                    "target" => target, "outcome" => outcome.to_owned());
                ((target, outcome.to_owned()), counter)
            },
        )
        .increment(1);
}

/// Counts one answered call to an upstream by its status: `ok` for 2xx, else the code.
pub fn upstream_status(target: &'static str, status: StatusCode) {
    if status.is_success() {
        upstream(target, "ok");
    } else {
        upstream(target, status.as_str());
    }
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
    static POSTED: OnceLock<Counter> = OnceLock::new();
    POSTED
        .get_or_init(|| {
            install();
            metrics::counter!("linker_stories_posted_total")
        })
        .increment(1);
}

/// Sets the gauges of what readiness found: a connected Asana account, a reachable context
/// server (1 or 0).
pub fn readiness(connected: bool, context_reachable: bool) {
    metrics::gauge!("linker_asana_connected").set(f64::from(u8::from(connected)));
    metrics::gauge!("linker_context_server_reachable").set(f64::from(u8::from(context_reachable)));
}

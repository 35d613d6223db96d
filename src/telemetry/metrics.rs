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
        if metrics::set_global_recorder(recorder).is_ok() {
            describe();
        }
        handle
    })
}

/// How often recorded histogram samples are folded into their buckets: each request leaves
/// one sample (8 bytes, in blocks) until then, so at 10,000 requests a second, every second
/// holds about 80 KB where every 5 s held 400 KB.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Folds histogram samples into buckets every second. The recorder keeps every sample
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

/// What became of a call, in one vocabulary for every `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded (2xx).
    Ok,
    /// The peer refused it (4xx other than 429, a JSON-RPC error, a refused grant).
    Refused,
    /// The peer asked us to slow down (429).
    RateLimited,
    /// The peer failed (5xx), or the exchange broke after it started.
    Failed,
    /// No answer in time.
    Timeout,
    /// No connection could be made.
    Unreachable,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::RateLimited => "rate_limited",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
        }
    }

    /// The outcome of an answer with `status`.
    pub fn of_status(status: StatusCode) -> Self {
        match status.as_u16() {
            200..=299 => Self::Ok,
            429 => Self::RateLimited,
            400..=499 => Self::Refused,
            _ => Self::Failed,
        }
    }

    /// The outcome of a call that got no answer.
    pub fn of_error(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else if error.is_connect() {
            Self::Unreachable
        } else {
            Self::Failed
        }
    }
}

/// Every `target` of `linker_upstream_calls_total`.
const TARGETS: [&str; 4] = ["asana", "token", "context", "mcp"];
/// Every `outcome`, for registering the series at zero.
const OUTCOMES: [Outcome; 6] = [
    Outcome::Ok,
    Outcome::Refused,
    Outcome::RateLimited,
    Outcome::Failed,
    Outcome::Timeout,
    Outcome::Unreachable,
];

/// Counts one call to an upstream (`asana`, `token`, `context`, `mcp`) by outcome.
pub fn upstream(target: &'static str, outcome: Outcome) {
    static SERIES: Registered<(&'static str, Outcome), Counter> = Registered::new();
    SERIES
        .get(
            |(t, o)| *t == target && *o == outcome,
            || {
                let counter = metrics::counter!("linker_upstream_calls_total",
                    "target" => target, "outcome" => outcome.as_str());
                ((target, outcome), counter)
            },
        )
        .increment(1);
}

/// Counts one MCP tool call by tool (one of the server's own names) and outcome, in the
/// vocabulary of the upstream calls: `ok`, `refused` (a malformed call, or a failure the
/// caller can act on), `rate_limited`, `timeout`, `failed`.
pub fn tool_call(tool: &'static str, outcome: Outcome) {
    static SERIES: Registered<(&'static str, Outcome), Counter> = Registered::new();
    SERIES
        .get(
            |(t, o)| *t == tool && *o == outcome,
            || {
                let counter = metrics::counter!("linker_mcp_tool_calls_total",
                    "tool" => tool, "outcome" => outcome.as_str());
                ((tool, outcome), counter)
            },
        )
        .increment(1);
}

/// Counts one retry.
pub fn retry() {
    metrics::counter!("linker_retries_total").increment(1);
}

/// Counts one token refresh by outcome (`ok`, `refused`, `failed`).
pub fn refresh(outcome: Outcome) {
    metrics::counter!("linker_token_refreshes_total", "outcome" => outcome.as_str()).increment(1);
}

/// Sets the count of log lines dropped under overload (kept by the log writer).
pub fn log_lines_dropped(total: u64) {
    metrics::counter!("linker_log_lines_dropped_total").absolute(total);
}

/// Says what each metric is (`# HELP`) and registers the counters at zero, so a dashboard sees
/// every series from the start rather than from its first event.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "linker_http_requests_total",
        "HTTP requests answered, by matched route, method and status"
    );
    describe_histogram!(
        "linker_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by matched route and method"
    );
    describe_counter!(
        "linker_upstream_calls_total",
        "Calls to Asana's API (asana), its token endpoint (token) and the context server (context, mcp), by outcome"
    );
    describe_counter!(
        "linker_retries_total",
        "Outbound calls retried under the retry policy"
    );
    describe_counter!(
        "linker_token_refreshes_total",
        "Asana token refreshes, by outcome"
    );
    describe_counter!("linker_asana_rate_limited_total", "429 answers from Asana");
    describe_counter!(
        "linker_mcp_tool_calls_total",
        "Calls of the MCP server's tools, by tool and outcome"
    );
    describe_counter!("linker_stories_posted_total", "Comments posted to Asana");
    describe_counter!(
        "linker_log_lines_dropped_total",
        "INFO log lines dropped because the log writer could not keep up"
    );
    describe_gauge!(
        "linker_asana_connected",
        "1 when an Asana account is connected with a usable token (as of the last /ready)"
    );
    describe_gauge!(
        "linker_context_server_reachable",
        "1 when the context server answered (as of the last /ready)"
    );
    describe_gauge!(
        "linker_connections",
        "Asana connections by state: healthy, expired (refreshed on next use), revoked (as of the last /ready)"
    );
    for target in TARGETS {
        for outcome in OUTCOMES {
            metrics::counter!("linker_upstream_calls_total", "target" => target, "outcome" => outcome.as_str()).absolute(0);
        }
    }
    for outcome in [Outcome::Ok, Outcome::Refused, Outcome::Failed] {
        metrics::counter!("linker_token_refreshes_total", "outcome" => outcome.as_str())
            .absolute(0);
    }
    for name in [
        "linker_retries_total",
        "linker_asana_rate_limited_total",
        "linker_stories_posted_total",
        "linker_log_lines_dropped_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
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
/// server (1 or 0), and how many connections stand where (no user in any label).
pub fn readiness(connected: bool, context_reachable: bool, connections: &[(&'static str, u32)]) {
    metrics::gauge!("linker_asana_connected").set(f64::from(u8::from(connected)));
    metrics::gauge!("linker_context_server_reachable").set(f64::from(u8::from(context_reachable)));
    for (state, count) in connections {
        metrics::gauge!("linker_connections", "state" => *state).set(f64::from(*count));
    }
}

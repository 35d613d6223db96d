//! One middleware for what every request gets: its id (kept or made, returned, on the log
//! span, in error bodies), its log span and response line, and its metrics. One layer rather
//! than five because each router layer costs a boxed service clone and a boxed future per
//! request, which the load benchmark showed as a tenth of the attach path's CPU.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::request_id;

/// Middleware: gives the request an id, a span and a response line, and counts it.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id::for_request(request.headers());
    // Ids are kept only when they are visible ASCII, and made ones are hex, so this holds.
    let header = HeaderValue::from_str(&id).ok();
    if let Some(header) = &header {
        request
            .headers_mut()
            .insert(request_id::HEADER, header.clone());
    }
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %request.uri().path(),
        request_id = %id,
    );
    let mut response = request_id::scope(id, next.run(request))
        .instrument(span.clone())
        .await;
    let status = response.status();
    let elapsed = started.elapsed();
    span.in_scope(|| {
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), latency_ms, "response");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms, "response");
        }
    });
    crate::metrics::request(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        &method,
        status,
        elapsed,
    );
    if let Some(header) = header {
        response.headers_mut().insert(request_id::HEADER, header);
    }
    response
}

//! One layer for what every request gets: its id (kept or made, returned, in the task-local
//! that every log line of the request reads, in error bodies), its response line, and its
//! metrics. One hand-written layer
//! rather than five `Router::layer` calls or a `from_fn`: each of those costs a boxed service
//! clone and a boxed future per request, which the load benchmark showed in the attach path.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, Response};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use tracing::Level;

use crate::http::error::ErrorLog;
use crate::telemetry::request_id;

/// A tool call answered on the request itself: its tool and outcome go on the request's
/// response line (a response extension), which is then its one line.
#[derive(Debug, Clone, Copy)]
pub struct ToolCall {
    /// The tool called.
    pub tool: &'static str,
    /// How it ended.
    pub outcome: &'static str,
}

/// Wraps each route in [`Observe`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

/// Gives each request an id, a span and a response line, and counts it.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
}

impl<S, B> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        // Handlers read the id from the task-local (`request_id::current`), not the header.
        let id = request_id::for_request(request.headers());
        // Ids are kept only when they are visible ASCII, and made ones are hex, so this holds.
        let header = HeaderValue::from_str(&id).ok();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let inner = request_id::scope(id, self.inner.call(request));
        ObserveFuture {
            inner,
            started,
            route,
            method,
            path,
            header,
        }
    }
}

pin_project! {
    /// The response of an observed request, logged, counted and given its id when ready.
    pub struct ObserveFuture<F> {
        #[pin]
        inner: TaskLocalFuture<String, F>,
        started: Instant,
        path: String,
        route: Option<MatchedPath>,
        method: Method,
        header: Option<HeaderValue>,
    }
}

impl<F, B, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut result = ready!(this.inner.as_mut().poll(cx));
        if let Ok(response) = &mut result {
            let status = response.status();
            let elapsed = this.started.elapsed();
            let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            // The request's one log line: its level and error code come from the error that
            // made the response, if any (the error itself logs nothing).
            let status = status.as_u16();
            let method = this.method.as_str();
            let path = this.path.as_str();
            let request_id = this
                .header
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            match response.extensions().get::<ErrorLog>() {
                Some(e) if e.level == Level::ERROR => {
                    tracing::error!(
                        status,
                        latency_us,
                        method,
                        path,
                        request_id,
                        code = e.code,
                        detail = e.detail.as_str(),
                        "response"
                    )
                }
                Some(e) if e.level == Level::WARN => {
                    tracing::warn!(
                        status,
                        latency_us,
                        method,
                        path,
                        request_id,
                        code = e.code,
                        detail = e.detail.as_str(),
                        "response"
                    )
                }
                Some(e) => {
                    tracing::info!(
                        status,
                        latency_us,
                        method,
                        path,
                        request_id,
                        code = e.code,
                        detail = e.detail.as_str(),
                        "response"
                    )
                }
                None => match response.extensions().get::<ToolCall>() {
                    Some(call) => tracing::info!(
                        status,
                        latency_us,
                        method,
                        path,
                        request_id,
                        tool = call.tool,
                        outcome = call.outcome,
                        "response"
                    ),
                    None => {
                        tracing::info!(status, latency_us, method, path, request_id, "response")
                    }
                },
            }
            crate::telemetry::metrics::request(
                this.route.as_ref().map_or("unmatched", MatchedPath::as_str),
                this.method,
                response.status(),
                elapsed,
            );
            if let Some(header) = this.header.take() {
                response.headers_mut().insert(request_id::HEADER, header);
            }
        }
        Poll::Ready(result)
    }
}

//! Request ids: an incoming `X-Request-Id` is kept (if sane), otherwise one is made; it is
//! returned, recorded on the request's log span, and put in error bodies.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::{MakeRequestId, RequestId};

/// The header carrying the id.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request being handled, for error bodies.
    static CURRENT: String;
}

/// Makes a random 32-hex-character id for requests that bring none (or a bad one).
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, request: &axum::http::Request<B>) -> Option<RequestId> {
        let id = request
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_sane(v))
            .map(str::to_owned)
            .unwrap_or_else(crate::random::hex_id);
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// 1–128 characters from `A-Z a-z 0-9 - _ . :`; anything else is replaced, so ids are safe
/// in logs and headers.
fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Middleware: makes the request's id available to error bodies while it is handled.
pub async fn scope(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    CURRENT.scope(id, next.run(request)).await
}

/// The id of the request being handled, if any.
pub fn current() -> Option<String> {
    CURRENT
        .try_with(Clone::clone)
        .ok()
        .filter(|id| !id.is_empty())
}

/// The incoming request's id (after `SetRequestId`), for the log span.
pub fn of<B>(request: &axum::http::Request<B>) -> &str {
    request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_are_kept_only_when_sane() {
        let mut make = MakeId;
        let keep = axum::http::Request::builder()
            .header(HEADER, "abc-123:x.y_z")
            .body(())
            .expect("request");
        let replace = axum::http::Request::builder()
            .header(HEADER, "bad id with spaces")
            .body(())
            .expect("request");

        let kept = make.make_request_id(&keep).expect("id");
        let made = make.make_request_id(&replace).expect("id");

        assert_eq!(kept.header_value(), "abc-123:x.y_z");
        assert_eq!(made.header_value().len(), 32);
    }
}

//! Request ids: an incoming `X-Request-Id` is kept (if sane), otherwise one is made; it is
//! returned, recorded on the request's log span, and put in error bodies.

use std::future::Future;

use axum::http::HeaderMap;
use tokio::task::futures::TaskLocalFuture;

/// The header carrying the id.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request being handled, for error bodies.
    static CURRENT: String;
}

/// The request's id: the incoming `X-Request-Id` if it is sane, else 32 random hex
/// characters.
pub fn for_request(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map_or_else(crate::util::random::quick_id, str::to_owned)
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

/// Runs `future` with `id` as the current request's id, for error bodies.
pub fn scope<F: Future>(id: String, future: F) -> TaskLocalFuture<String, F> {
    CURRENT.scope(id, future)
}

/// The id of the request being handled, if any.
pub fn current() -> Option<String> {
    CURRENT
        .try_with(Clone::clone)
        .ok()
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_are_kept_only_when_sane() {
        let headers = |id: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, id.parse().expect("header value"));
            headers
        };

        let kept = for_request(&headers("abc-123:x.y_z"));
        let made = for_request(&headers("bad id with spaces"));

        assert_eq!(kept, "abc-123:x.y_z");
        assert_eq!(made.len(), 32);
        assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}

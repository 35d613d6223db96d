//! `/mcp`: rmcp's Streamable HTTP service behind a guard that identifies the caller (the
//! same keys as the HTTP API), answers 401 with `WWW-Authenticate: Bearer` when it cannot,
//! and keeps each legacy session to the key that opened it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::sessions::{Access, OWNER, Owner, StoreSessions};
use super::{LinkerTools, stateless};
use crate::app::AppState;
use crate::http::access::{Actor, ApiAccess, bearer};
use crate::http::error::ApiError;
use crate::telemetry::request_id;
use crate::util::cause_chain;
use secrecy::SecretString;

/// Largest JSON-RPC message accepted (as for the HTTP API's bodies).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Who called `/mcp`: put on each request by the guard, read by the tools.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who they are, and so whom they act as.
    pub actor: Actor,
    /// The request's id, for its log lines and error bodies.
    pub request_id: String,
}

/// Everything `/mcp` needs, shared by its requests: rmcp's service is called through
/// [`StreamableHttpService::handle`] rather than as a routed service, which axum would clone
/// (its settings with it) for every request.
struct Guard {
    state: Arc<AppState>,
    sessions: Arc<StoreSessions>,
    tools: LinkerTools,
    hosts: Vec<String>,
    service: StreamableHttpService<LinkerTools, LocalSessionManager>,
}

/// The `/mcp` endpoint over `state`, behind the key guard; its open streams end when
/// `state.mcp_stop` is cancelled (at shutdown).
pub fn router<S: Clone + Send + Sync + 'static>(state: Arc<AppState>) -> axum::Router<S> {
    let sessions = Arc::new(StoreSessions::new(state.store.clone()));
    let hosts = allowed_hosts(&state.public_url);
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts.clone())
        .with_json_response(true)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(state.mcp_stop.clone());
    config.session_store = Some(Arc::clone(&sessions) as _);
    let tools = LinkerTools::for_http(Arc::clone(&state));
    let factory = tools.clone();
    let service = StreamableHttpService::new(
        move || Ok(factory.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let guard = Guard {
        state,
        sessions,
        tools,
        hosts,
        service,
    };
    axum::Router::new()
        .route("/mcp", any(guard_mcp))
        .with_state(Arc::new(guard))
}

/// The loopback names and `PUBLIC_URL`'s host (on any port) are the hosts `/mcp` answers
/// to: a rebinding domain that resolves to 127.0.0.1 is refused.
fn allowed_hosts(public_url: &str) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    if let Ok(url) = url::Url::parse(public_url)
        && let Some(host) = url.host_str()
    {
        hosts.push(host.to_owned());
    }
    hosts
}

/// Identifies the caller, answers a plain stateless `tools/call` itself, and hands anything
/// else to rmcp, within the session's owner check.
async fn guard_mcp(State(guard): State<Arc<Guard>>, request: Request) -> Response {
    let (mut parts, mut body) = request.into_parts();
    let actor = match ApiAccess::from_request_parts(&mut parts, &guard.state).await {
        Ok(ApiAccess(actor)) => actor,
        Err(error) => return refuse(error, bearer(&parts.headers).is_some()),
    };
    let caller = Caller {
        actor,
        request_id: request_id::current().unwrap_or_default(),
    };
    let session = parts.headers.get(stateless::SESSION_ID);
    if session.is_none()
        && let Some(name) = stateless::plain_headers(&parts, &guard.hosts, MAX_BODY_BYTES)
    {
        let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(e) => {
                return ApiError::InvalidRequest(format!(
                    "the request body could not be read: {e}"
                ))
                .into_response();
            }
        };
        if let Some(plain) = stateless::read(&bytes, name) {
            return stateless::answer(&guard.tools, plain, caller).await;
        }
        body = Body::from(bytes);
    }
    let owner = Owner {
        bearer: bearer(&parts.headers).map(SecretString::from),
        user_gid: match &caller.actor {
            Actor::Person(user_gid) => Some(user_gid.clone()),
            Actor::Operator => None,
        },
    };
    if let Some(session) = session.and_then(|value| value.to_str().ok()) {
        match guard.sessions.access(session, &owner).await {
            Ok(Access::Allowed) => {}
            // As for a session that does not exist: the client starts a new one.
            Ok(Access::Refused) => {
                return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
            }
            Err(error) => return ApiError::StoreUnavailable(cause_chain(&error)).into_response(),
        }
    }
    parts.extensions.insert(caller);
    let method = parts.method.clone();
    let request = Request::from_parts(parts, body);
    let mut response = OWNER
        .scope(owner, guard.service.handle(request))
        .await
        .map(Body::new);
    // rmcp answers a session's DELETE with 202; clients (the Python SDK) expect 200 or 204.
    if method == Method::DELETE && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// A refused caller: 401 with `WWW-Authenticate`, so MCP clients know to ask for a key.
fn refuse(error: ApiError, presented: bool) -> Response {
    let unauthorized = matches!(error, ApiError::Unauthorized(_));
    let mut response = error.into_response();
    if unauthorized {
        let challenge = if presented {
            r#"Bearer realm="mcp-asana-linker", error="invalid_token""#
        } else {
            r#"Bearer realm="mcp-asana-linker""#
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_host_is_allowed_beside_loopback() {
        let hosts = allowed_hosts("https://linker.example.com");
        assert!(hosts.contains(&"linker.example.com".to_owned()));
        assert!(hosts.contains(&"127.0.0.1".to_owned()));
    }
}

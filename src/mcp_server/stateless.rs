//! The plain stateless `tools/call`, answered before rmcp. rmcp serves a stateless
//! (2026-07-28) request by building a whole service for it: three tasks, their channels and a
//! peer, and the message read through serde's buffered untagged enums. That is about 150,000
//! instructions a call, more than the attach itself. A call whose headers and body have
//! exactly the plain form every client sends is read here and answered with the same JSON-RPC
//! response rmcp would write; anything else (another method, a session, an unusual header, an
//! extra field, a malformed argument) goes to rmcp unchanged, so rmcp stays the judge of what
//! is valid and of every error. The tests send each call both ways and compare the answers.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use rmcp::model::{ClientCapabilities, Implementation, JsonRpcVersion2_0, RequestId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Call, Caller, LinkerTools, ToolResult};
use crate::telemetry::observe::ToolCall;

/// The protocol era with no session, where each request carries its own version.
const ERA: &str = "2026-07-28";
const METHOD: &str = "tools/call";

// Named once: a header name given as text is parsed again on every lookup.
pub(super) const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

/// A `tools/call` in the plain form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message<'a> {
    // Read so that only "2.0" passes.
    #[serde(rename = "jsonrpc")]
    _jsonrpc: JsonRpcVersion2_0,
    id: RequestId,
    method: String,
    #[serde(borrow)]
    params: Params<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params<'a> {
    name: String,
    // Kept as text and read once, straight into the tool's arguments.
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(rename = "_meta")]
    meta: Meta,
}

/// The three keys every 2026-07-28 request must carry, and no other (a progress token, for
/// one, would let the tool send notifications: rmcp's business).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    protocol_version: String,
    #[serde(rename = "io.modelcontextprotocol/clientInfo")]
    _client_info: Implementation,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    _client_capabilities: ClientCapabilities,
}

/// A plain call, read.
pub(super) struct Plain {
    id: RequestId,
    call: Call,
}

/// The `Mcp-Name` of a request whose headers have the plain form of a stateless
/// `tools/call` (one of each `MCP-*` header, no `Mcp-Param-*`, no session, JSON with a
/// length within `max_body`, an `Accept` of bare media types naming both JSON and SSE, no
/// `Origin`, a `Host` among `hosts`); `None` sends the request to rmcp.
pub(super) fn plain_headers<'a>(
    parts: &'a Parts,
    hosts: &[String],
    max_body: usize,
) -> Option<&'a str> {
    let headers = &parts.headers;
    let unusual = parts.method != axum::http::Method::POST
        || parts.uri.authority().is_some()
        || headers.contains_key(SESSION_ID)
        || headers.contains_key(header::ORIGIN)
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .keys()
            .any(|name| name.as_str().starts_with("mcp-param-"));
    let versioned = single(headers, &PROTOCOL_VERSION) == Some(ERA)
        && single(headers, &MCP_METHOD) == Some(METHOD);
    let json = single(headers, &header::CONTENT_TYPE)
        .is_some_and(|value| value.eq_ignore_ascii_case("application/json"));
    let bounded = single(headers, &header::CONTENT_LENGTH)
        .and_then(|value| value.parse::<usize>().ok())
        .is_some_and(|length| length <= max_body);
    let hosted = single(headers, &header::HOST).is_some_and(|host| host_allowed(host, hosts));
    if unusual || !versioned || !json || !bounded || !hosted || !accepts_json_and_sse(headers) {
        return None;
    }
    single(headers, &MCP_NAME)
}

/// The body read as a plain call of the tool `name` (the `Mcp-Name` header), with valid
/// arguments; `None` sends it to rmcp.
pub(super) fn read(body: &Bytes, name: &str) -> Option<Plain> {
    let message: Message = serde_json::from_slice(body).ok()?;
    let Params {
        name: called,
        arguments,
        meta,
    } = message.params;
    if message.method != METHOD || meta.protocol_version != ERA || called != name {
        return None;
    }
    let call = match arguments {
        // rmcp takes only an object; serde would read a struct from an array too.
        Some(arguments) if !arguments.get().starts_with('{') => return None,
        Some(arguments) => Call::from_arguments(
            &called,
            &mut serde_json::Deserializer::from_str(arguments.get()),
        ),
        None => Call::from_arguments(&called, serde_json::json!({})),
    };
    Some(Plain {
        id: message.id,
        call: call.ok()?,
    })
}

/// The JSON-RPC response to a `tools/call`, shaped as rmcp writes it for this era.
#[derive(Serialize)]
struct Answer<'a> {
    jsonrpc: &'static str,
    id: &'a RequestId,
    result: CallResult<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallResult<'a> {
    result_type: &'static str,
    content: [TextBlock<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    structured_content: Option<&'a RawValue>,
    is_error: bool,
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> Answer<'a> {
    fn new(id: &'a RequestId, result: &'a ToolResult) -> Self {
        let (text, structured_content) = match result {
            ToolResult::Output(output) => (output.get(), Some(&**output)),
            ToolResult::Refusal(message) => (message.as_str(), None),
        };
        Self {
            jsonrpc: "2.0",
            id,
            result: CallResult {
                result_type: "complete",
                content: [TextBlock { kind: "text", text }],
                is_error: structured_content.is_none(),
                structured_content,
            },
        }
    }
}

/// Runs a plain call and answers as rmcp does: 200, the JSON-RPC response as JSON. The
/// tool and its outcome go on the request's response line.
pub(super) async fn answer(tools: &LinkerTools, plain: Plain, caller: Caller) -> Response {
    let tool = plain.call.tool();
    let (result, outcome) = tools.run(plain.call, caller).await;
    let mut response = match serde_json::to_vec(&Answer::new(&plain.id, &result)) {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            Body::from(body),
        )
            .into_response(),
        Err(e) => crate::http::error::ApiError::Internal(format!("serialize the answer: {e}"))
            .into_response(),
    };
    response.extensions_mut().insert(ToolCall {
        tool,
        outcome: outcome.as_str(),
    });
    response
}

/// The value of `name` if it appears exactly once, as text.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// Whether every `Accept` entry is a bare media type (no weight or parameter to interpret)
/// and both `application/json` and `text/event-stream` are among them, as rmcp requires.
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for entry in value.split(',') {
            let entry = entry.trim();
            if entry.contains([';', '"']) {
                return false;
            }
            json |= entry.eq_ignore_ascii_case("application/json");
            sse |= entry.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

/// Whether `host` (a `Host` header: a name, or a name and a port) names one of `hosts`
/// exactly. A bracketed IPv6 address or any other form is left to rmcp.
fn host_allowed(host: &str, hosts: &[String]) -> bool {
    let name = match host.split_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return false,
        None => host,
    };
    hosts.iter().any(|allowed| allowed == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    }

    /// The headers a client sends with a stateless call, with `change` made to them.
    fn parts(change: impl FnOnce(&mut HeaderMap)) -> Parts {
        let mut request = axum::http::Request::post("/mcp")
            .header("host", "127.0.0.1:41234")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("content-length", "310")
            .header("authorization", "Bearer key")
            .header("mcp-protocol-version", ERA)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "attach_context")
            .body(())
            .unwrap();
        change(request.headers_mut());
        request.into_parts().0
    }

    #[test]
    fn the_headers_of_a_stateless_call_are_plain_and_any_deviation_is_not() {
        let plain = |name: &'static str, value: Option<&'static str>| {
            let parts = parts(|headers| {
                if let Some(value) = value {
                    // Appended: a second value of a header already there is a deviation too.
                    headers.append(name, HeaderValue::from_static(value));
                }
            });
            plain_headers(&parts, &hosts(), 64 * 1024).map(str::to_owned)
        };
        assert_eq!(
            plain("x-other", Some("1")).as_deref(),
            Some("attach_context")
        );
        for (name, value) in [
            ("mcp-session-id", "s"),
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "find_tasks"),
            ("mcp-param-task", "1"),
            ("origin", "http://127.0.0.1"),
            ("content-length", "310"),
            ("content-type", "application/json"),
            ("host", "127.0.0.1"),
            ("transfer-encoding", "chunked"),
        ] {
            assert_eq!(plain(name, Some(value)), None, "{name}: {value}");
        }
    }

    #[test]
    fn a_body_longer_than_the_limit_or_of_another_type_is_not_plain() {
        let with = |name, value| {
            let parts = parts(|headers| {
                headers.insert(name, HeaderValue::from_static(value));
            });
            plain_headers(&parts, &hosts(), 64 * 1024).is_some()
        };
        assert!(with(header::CONTENT_LENGTH, "65536"));
        assert!(!with(header::CONTENT_LENGTH, "65537"));
        assert!(!with(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8"
        ));
        assert!(!with(header::HOST, "rebind.example"));
        assert!(!with(header::ACCEPT, "application/json"));
    }

    #[test]
    fn a_host_is_plain_only_as_an_allowed_name_with_an_optional_numeric_port() {
        assert!(host_allowed("127.0.0.1:8080", &hosts()));
        assert!(host_allowed("localhost", &hosts()));
        for host in [
            "example.com",
            "127.0.0.1:",
            "127.0.0.1:x",
            "[::1]:80",
            "LOCALHOST",
        ] {
            assert!(!host_allowed(host, &hosts()), "{host}");
        }
    }

    #[test]
    fn accept_is_plain_only_with_bare_json_and_sse() {
        let accept = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
            }
            accepts_json_and_sse(&headers)
        };
        assert!(accept(&["application/json, text/event-stream"]));
        assert!(accept(&["text/event-stream", "Application/JSON"]));
        assert!(!accept(&["application/json"]));
        assert!(!accept(&["application/json;q=0, text/event-stream"]));
        assert!(!accept(&[]));
    }

    #[test]
    fn a_body_is_plain_only_when_its_name_matches_and_nothing_is_extra() {
        let body = |params: serde_json::Value| {
            Bytes::from(
                serde_json::to_vec(&serde_json::json!({
                    "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params
                }))
                .unwrap(),
            )
        };
        let meta = serde_json::json!({
            "io.modelcontextprotocol/protocolVersion": ERA,
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}
        });
        let plain = body(serde_json::json!({
            "name": "list_contexts", "arguments": {}, "_meta": meta
        }));
        assert!(read(&plain, "list_contexts").is_some());
        assert!(read(&plain, "find_tasks").is_none());
        let mut with_token = meta.clone();
        with_token["progressToken"] = serde_json::json!(1);
        for params in [
            serde_json::json!({"name": "list_contexts", "_meta": with_token}),
            serde_json::json!({"name": "list_contexts", "arguments": {"x": 1}, "_meta": meta}),
            serde_json::json!({"name": "list_contexts"}),
            serde_json::json!({"name": "list_contexts", "_meta": meta, "task": {}}),
            // rmcp takes arguments only as an object, where serde would read a struct from
            // an array as well.
            serde_json::json!({"name": "list_contexts", "arguments": [], "_meta": meta}),
        ] {
            assert!(
                read(&body(params.clone()), "list_contexts").is_none(),
                "{params}"
            );
        }
    }
}

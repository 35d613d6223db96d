//! The linker as an MCP server: its four tools over Streamable HTTP at `/mcp` (the stateless
//! 2026-07-28 era and legacy `initialize` sessions alike) and over stdio
//! (`mcp-asana-linker mcp`). The tools call the same services as the HTTP API.

mod http;
mod sessions;
mod stateless;
mod tools;

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::app::AppState;
use crate::domain::{AttachRequest, AttachRequestBody, TaskGid};
use crate::http::access::Actor;
use crate::http::error::ApiError;
use crate::http::routes::attach::{Answer, acting, attach_for};
use crate::idempotency::IdempotencyKey;
use crate::service::tasks::FindError;
use crate::telemetry::metrics::{self, Outcome};
use crate::telemetry::request_id;

pub use http::{Caller, router};
use tools::{ATTACH, AttachArgs, AttachOutput, FIND, FindArgs, FindOutput, LIST, ListArgs};
use tools::{PREVIEW, PreviewArgs, TOOLS};

/// Tasks `find_tasks` returns unless asked for another number.
const DEFAULT_FOUND: u8 = 10;

/// The tools, over the shared state. Over HTTP the caller comes with each request; over
/// stdio it is fixed.
#[derive(Clone)]
pub struct LinkerTools {
    state: Arc<AppState>,
    stdio: Option<Actor>,
}

impl LinkerTools {
    /// Tools for HTTP callers, each identified by the `/mcp` guard.
    pub fn for_http(state: Arc<AppState>) -> Self {
        Self { state, stdio: None }
    }

    /// Tools for the one local user of a stdio server: the operator, acting as the default
    /// connection (or the one an `as` argument names).
    pub fn for_stdio(state: Arc<AppState>) -> Self {
        Self {
            state,
            stdio: Some(Actor::Operator),
        }
    }

    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        if let Some(actor) = &self.stdio {
            return Ok(Caller {
                actor: actor.clone(),
                request_id: crate::util::random::quick_id(),
            });
        }
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("the caller was not identified", None))
    }

    /// Runs `call` as `caller` and counts it: for rmcp's `tools/call` and for the plain
    /// stateless ones answered before rmcp.
    async fn run(&self, call: Call, caller: Caller) -> (ToolResult, Outcome) {
        let tool = call.tool();
        let (result, outcome) =
            request_id::scope(caller.request_id, self.dispatch(call, caller.actor)).await;
        metrics::tool_call(tool, outcome);
        (result, outcome)
    }

    /// Runs the tool. Each tool's future is boxed: rmcp moves the whole handler future into a
    /// task of its own per call, and an unboxed one would be as large as the largest tool's.
    async fn dispatch(&self, call: Call, actor: Actor) -> (ToolResult, Outcome) {
        let state = &self.state;
        match call {
            Call::List(ListArgs {}) => {
                let listed = match state.attacher.context.as_ref() {
                    Some(source) => Box::pin(source.catalog()).await.map_err(ApiError::from),
                    None => Err(ApiError::NotConfigured(vec![
                        "MCP_SERVER_URL or MCP_SERVER_COMMAND",
                    ])),
                };
                self.answer(listed)
            }
            Call::Preview(args) => {
                let preview = async {
                    let request = AttachRequest::try_from(AttachRequestBody {
                        // The preview does not look at the task.
                        task_gid: "0".to_owned(),
                        context_name: args.context,
                        arguments: args.arguments,
                        format: args.format,
                        target: args.target,
                        pin: false,
                        footer: false,
                        acting_as: None,
                    })?;
                    Ok::<_, ApiError>(state.attacher.preview(&request).await?)
                };
                self.answer(Box::pin(preview).await)
            }
            Call::Attach(args) => self.answer(Box::pin(self.attach(args, actor)).await),
            Call::Find(args) => self.answer(Box::pin(self.find(args, actor)).await),
        }
    }

    async fn attach(&self, args: AttachArgs, actor: Actor) -> Result<AttachOutput, ApiError> {
        let key = args
            .idempotency_key
            .as_deref()
            .map(IdempotencyKey::parse)
            .transpose()?;
        let task = TaskGid::from_reference(&args.task)?;
        let request = AttachRequest::try_from(AttachRequestBody {
            task_gid: task.as_str().to_owned(),
            context_name: args.context,
            arguments: args.arguments,
            format: args.format,
            target: args.target,
            pin: args.pin,
            footer: false,
            acting_as: None,
        })?;
        let state = Arc::clone(&self.state);
        let mut output = match attach_for(state, actor, args.acting_as, request, key).await? {
            Answer::Fresh(Ok(attached)) => AttachOutput::from(attached),
            Answer::Fresh(Err(error)) => return Err(error),
            Answer::Replayed(outcome) if outcome.status < 400 => {
                let mut output: AttachOutput =
                    serde_json::from_value(outcome.body).map_err(|e| {
                        ApiError::Internal(format!("a stored outcome did not read back: {e}"))
                    })?;
                output.replayed = true;
                output
            }
            Answer::Replayed(outcome) => return Err(replayed_error(&outcome.body)),
        };
        output.links = output
            .story_gids
            .iter()
            .map(|story| crate::asana::story_url(&output.task_gid, story))
            .collect();
        Ok(output)
    }

    async fn find(&self, args: FindArgs, actor: Actor) -> Result<FindOutput, ApiError> {
        let acting = acting(&self.state, actor, args.acting_as.as_deref()).await?;
        let found = self
            .state
            .attacher
            .find_tasks(
                &acting,
                args.workspace.as_deref(),
                &args.query,
                args.count.unwrap_or(DEFAULT_FOUND),
            )
            .await;
        match found {
            Ok(tasks) => Ok(FindOutput { tasks }),
            Err(FindError::Failed(error)) => Err(error.into()),
            Err(FindError::Store(error)) => {
                Err(ApiError::StoreUnavailable(crate::util::cause_chain(&error)))
            }
            Err(other) => Err(ApiError::InvalidRequest(other.to_string())),
        }
    }

    /// The result the caller sees, and how the call is counted.
    fn answer<T: Serialize, E: Into<ApiError>>(
        &self,
        result: Result<T, E>,
    ) -> (ToolResult, Outcome) {
        match result {
            Ok(value) => match serde_json::value::to_raw_value(&value) {
                Ok(output) => (ToolResult::Output(output), Outcome::Ok),
                Err(e) => (
                    ToolResult::Refusal(format!("internal error: {e}")),
                    Outcome::Failed,
                ),
            },
            Err(error) => {
                let error = error.into();
                let outcome = match error.status() {
                    axum::http::StatusCode::GATEWAY_TIMEOUT => Outcome::Timeout,
                    status => Outcome::of_status(status),
                };
                (ToolResult::Refusal(self.message(&error)), outcome)
            }
        }
    }

    /// What the model is told of a failure: the API's message, with where to connect when
    /// no Asana account is connected.
    fn message(&self, error: &ApiError) -> String {
        match error {
            ApiError::AsanaNotConnected(reason) => format!(
                "{reason}. The person must connect their Asana account in a browser first, at {}/, then call again",
                self.state.public_url
            ),
            other => other.to_string(),
        }
    }
}

impl ServerHandler for LinkerTools {
    fn get_info(&self) -> ServerConfig {
        // rmcp asks for it on every stateless request: built once.
        static INFO: LazyLock<ServerConfig> = LazyLock::new(|| {
            ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
                .with_server_info(Implementation::new(
                    "mcp-asana-linker",
                    env!("CARGO_PKG_VERSION"),
                ))
                .with_instructions(
                    "Attach named contexts to Asana tasks. list_contexts shows what can be attached; find_tasks finds a task's gid by name; preview_context shows what would be posted; attach_context posts it as your connected Asana account.",
                )
        });
        INFO.clone()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(TOOLS.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        TOOLS.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&context)?;
        let started = Instant::now();
        let request_id = caller.request_id.clone();
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        match Call::from_arguments(&request.name, arguments) {
            Ok(call) => {
                let tool = call.tool();
                let (result, outcome) = self.run(call, caller).await;
                log(tool, outcome, &request_id, started);
                Ok(CallToolResponse::from(result.into_rmcp()))
            }
            Err(error) => {
                if let Some(tool) = known(&request.name) {
                    metrics::tool_call(tool, Outcome::Refused);
                    log(tool, Outcome::Refused, &request_id, started);
                }
                Err(error)
            }
        }
    }
}

/// One tool call, its arguments read.
enum Call {
    List(ListArgs),
    Preview(PreviewArgs),
    Attach(AttachArgs),
    Find(FindArgs),
}

impl Call {
    /// The call of the tool named `name` with `arguments` (an object, as a JSON value or
    /// still as text), or the protocol error for a malformed call.
    fn from_arguments<'de, D>(name: &str, arguments: D) -> Result<Self, ErrorData>
    where
        D: serde::Deserializer<'de>,
    {
        let Some(tool) = known(name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool named {name:?}"),
                None,
            ));
        };
        let call = match tool {
            LIST => ListArgs::deserialize(arguments).map(Self::List),
            PREVIEW => PreviewArgs::deserialize(arguments).map(Self::Preview),
            ATTACH => AttachArgs::deserialize(arguments).map(Self::Attach),
            _ => FindArgs::deserialize(arguments).map(Self::Find),
        };
        call.map_err(|e| ErrorData::invalid_params(format!("{tool}: {e}"), None))
    }

    fn tool(&self) -> &'static str {
        match self {
            Self::List(_) => LIST,
            Self::Preview(_) => PREVIEW,
            Self::Attach(_) => ATTACH,
            Self::Find(_) => FIND,
        }
    }
}

/// The tool named `name`, if there is one.
fn known(name: &str) -> Option<&'static str> {
    [LIST, PREVIEW, ATTACH, FIND]
        .into_iter()
        .find(|tool| *tool == name)
}

/// The log line of a call rmcp served (over stdio, or within a session's stream, which
/// the request's response line does not wait for).
fn log(tool: &'static str, outcome: Outcome, request_id: &str, started: Instant) {
    tracing::info!(
        request_id = %request_id,
        tool,
        outcome = outcome.as_str(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "mcp tool call"
    );
}

/// What a tool answered: its structured output, written as JSON once (it is sent twice: as
/// the structured content, and as the text copy that clients without structured content
/// read), or a refusal in plain words.
enum ToolResult {
    Output(Box<RawValue>),
    Refusal(String),
}

impl ToolResult {
    /// The result as rmcp's type, for the calls rmcp serves.
    fn into_rmcp(self) -> CallToolResult {
        match self {
            Self::Output(output) => match serde_json::from_str(output.get()) {
                Ok(value) => {
                    let mut result =
                        CallToolResult::success(vec![ContentBlock::text(output.get())]);
                    result.structured_content = Some(value);
                    result
                }
                Err(e) => {
                    CallToolResult::error(vec![ContentBlock::text(format!("internal error: {e}"))])
                }
            },
            Self::Refusal(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        }
    }
}

/// A replayed failure, from its stored envelope.
fn replayed_error(body: &Value) -> ApiError {
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("the first call with this idempotency_key failed");
    ApiError::Upstream {
        message: format!("the first call with this idempotency_key failed: {message}"),
        cause: message.to_owned(),
    }
}

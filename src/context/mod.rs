//! Context sources: where the text of a named context comes from. `rest` is the seed's
//! contract; `mcp` speaks MCP over Streamable HTTP or stdio; `auto` decides on first use.

mod auto;
mod mcp;
mod rest;

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;

pub use auto::AutoSource;
pub use mcp::{McpSource, McpTarget};
pub use rest::RestContextSource;

use crate::config::{ContextServer, McpProtocol};
use crate::domain::ContextName;
use crate::util::retry::{Retry, RetryPolicy};

/// Prompt arguments: names to string values, as MCP requires.
pub type PromptArguments = BTreeMap<String, String>;

/// Where a context came from, as reported to the client.
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourceRef {
    /// An MCP resource, read by URI.
    McpResource {
        /// The resource's URI.
        uri: String,
    },
    /// An MCP prompt, rendered with the request's arguments.
    McpPrompt {
        /// The prompt's name.
        name: String,
    },
    /// The seed's REST contract.
    Rest {
        /// The context's name.
        name: String,
    },
}

/// A context's text, ready to post, and where it came from.
#[derive(Debug, Clone)]
pub struct Context {
    /// The text to post.
    pub text: String,
    /// Its origin, as reported to the client.
    pub source: SourceRef,
    /// Its MIME type, when the source says.
    pub mime_type: Option<String>,
    /// The context server's `host[:port]` (no credentials), for a header that may name it;
    /// `None` for a server started as a command.
    pub server_host: Option<String>,
}

impl Context {
    /// The kind of source, for the comment's header: "MCP resource ctx://…", "MCP prompt
    /// review", "REST context". It never names credentials or a command line, and names a
    /// network host only when `show_hosts` (`COMMENT_HEADER_HOSTS`) allows it.
    pub fn label(&self, show_hosts: bool) -> String {
        let on_host = match (&self.server_host, show_hosts) {
            (Some(host), true) => format!(" on {host}"),
            _ => String::new(),
        };
        match &self.source {
            SourceRef::McpResource { uri } if show_hosts || !names_a_host(uri) => {
                format!("MCP resource {uri}")
            }
            SourceRef::McpResource { .. } => "MCP resource".to_owned(),
            SourceRef::McpPrompt { name } => format!("MCP prompt {name}{on_host}"),
            SourceRef::Rest { .. } => format!("REST context{on_host}"),
        }
    }
}

/// Schemes whose authority is a network host (an internal address to keep out of comments).
const NETWORK_SCHEMES: &[&str] = &["http", "https", "ws", "wss", "ftp", "file"];

fn names_a_host(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|url| NETWORK_SCHEMES.contains(&url.scheme()) && url.has_host())
}

/// `uri` without user name and password, for answers and comments. Text that is not a URL is
/// returned as it is.
pub fn without_credentials(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => uri.to_owned(),
    }
}

/// `host[:port]` of a server URL: what a header may name, never its credentials or path.
pub fn host_of(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// What a source offers, for people choosing a name (`GET /contexts`).
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Catalog {
    /// Readable resources.
    pub resources: Vec<ResourceEntry>,
    /// Prompts.
    pub prompts: Vec<PromptEntry>,
}

/// One resource in a catalog.
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResourceEntry {
    /// Programmatic name.
    pub name: String,
    /// Display title, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// URI to read it by.
    pub uri: String,
    /// MIME type, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// One prompt in a catalog.
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PromptEntry {
    /// The prompt's name.
    pub name: String,
    /// Its arguments.
    pub arguments: Vec<PromptArgumentEntry>,
}

/// One prompt argument.
#[derive(rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PromptArgumentEntry {
    /// The argument's name.
    pub name: String,
    /// Whether the prompt needs it.
    pub required: bool,
    /// What it is for, if the server says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A failure to get a context, in the context server's terms.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The server has no context by that name.
    #[error("no context named {name:?}")]
    NotFound {
        /// The name or URI asked for.
        name: String,
        /// Close names the server does have.
        suggestions: Vec<String>,
    },
    /// The name cannot be sent to this kind of source (a REST name with a path separator).
    #[error("{0}")]
    InvalidName(String),
    /// The server refused the prompt arguments (its message).
    #[error("{0}")]
    InvalidArguments(String),
    /// No answer within the timeout.
    #[error("the context server did not answer in time")]
    Timeout,
    /// The REST server answered with an unexpected status.
    #[error("the context server answered {0}")]
    Status(reqwest::StatusCode),
    /// No connection could be made (nothing was sent).
    #[error("cannot connect to the context server: {0}")]
    Unreachable(String),
    /// The request could not be sent or the answer not read.
    #[error("cannot reach the context server: {0}")]
    Transport(String),
    /// The MCP server answered with an error, or the session could not be set up.
    #[error("the MCP server failed: {0}")]
    Mcp(String),
    /// An answer that does not follow the protocol.
    #[error("unexpected answer from the context server: {0}")]
    UnexpectedResponse(String),
    /// The source cannot list what it offers (the REST contract has no listing).
    #[error("the REST context contract has no listing; name contexts directly")]
    ListingUnsupported,
}

impl From<reqwest::Error> for ContextError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_connect() {
            Self::Unreachable(crate::util::cause_chain(&error))
        } else if error.is_timeout() {
            Self::Timeout
        } else {
            Self::Transport(crate::util::cause_chain(&error))
        }
    }
}

impl ContextError {
    /// What the retry policy may do after this failure: reads are safe to repeat, so
    /// connect errors, 429 and 5xx are retried; a timeout is not (it would only hang again).
    pub fn retry(&self) -> Retry {
        match self {
            Self::Unreachable(_) => Retry::Backoff,
            Self::Status(status) if status.as_u16() == 429 || status.is_server_error() => {
                Retry::Backoff
            }
            _ => Retry::No,
        }
    }
}

/// The configured context source, with the retry policy its calls run under.
#[derive(Debug)]
pub struct ContextSource {
    kind: SourceKind,
    retry: RetryPolicy,
}

#[derive(Debug)]
enum SourceKind {
    Rest(RestContextSource),
    Mcp(McpSource),
    Auto(Box<AutoSource>),
}

impl ContextSource {
    /// Builds the source the settings describe.
    pub fn new(
        server: &ContextServer,
        auth_token: Option<SecretString>,
        http: reqwest::Client,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Self {
        let kind = match server {
            ContextServer::Command(words) => SourceKind::Mcp(McpSource::new(
                McpTarget::Stdio(words.clone()),
                http,
                timeout,
            )),
            ContextServer::Url { url, protocol } => {
                let rest =
                    || RestContextSource::new(http.clone(), url, auth_token.clone(), timeout);
                let mcp = || {
                    McpSource::new(
                        McpTarget::Http {
                            url: url.clone(),
                            auth_token: auth_token.clone(),
                        },
                        http.clone(),
                        timeout,
                    )
                };
                match protocol {
                    McpProtocol::Rest => SourceKind::Rest(rest()),
                    McpProtocol::Mcp => SourceKind::Mcp(mcp()),
                    McpProtocol::Auto => SourceKind::Auto(Box::new(AutoSource::new(mcp(), rest()))),
                }
            }
        };
        Self { kind, retry }
    }

    /// Fetches a context by name or URI; `arguments` go to MCP prompts.
    pub async fn fetch(
        &self,
        name: &ContextName,
        arguments: &PromptArguments,
    ) -> Result<Context, ContextError> {
        // The MCP futures are several times the size of the REST one; boxed, they do not
        // make every attach's future (moved whole when it starts) that large. Once `auto`
        // has settled on REST, its REST source is called directly: boxing the whole auto
        // future (7 KB) cost every attach an allocation and a copy of that size.
        let fetch = || async {
            match &self.kind {
                SourceKind::Rest(rest) => rest.fetch(name).await,
                SourceKind::Mcp(mcp) => Box::pin(mcp.fetch(name, arguments)).await,
                SourceKind::Auto(auto) => match auto.decided_rest() {
                    Some(rest) => rest.fetch(name).await,
                    None => Box::pin(auto.fetch(name, arguments)).await,
                },
            }
        };
        self.retry.run(fetch, ContextError::retry).await
    }

    /// Whether the server is reachable (an MCP handshake, or any HTTP answer for REST).
    pub async fn probe(&self) -> Result<(), ContextError> {
        match &self.kind {
            SourceKind::Rest(rest) => rest.probe().await,
            SourceKind::Mcp(mcp) => mcp.connect().await,
            SourceKind::Auto(auto) => auto.probe().await,
        }
    }

    /// Lists what the source offers.
    pub async fn catalog(&self) -> Result<Catalog, ContextError> {
        let catalog = || async {
            match &self.kind {
                SourceKind::Rest(_) => Err(ContextError::ListingUnsupported),
                SourceKind::Mcp(mcp) => mcp.catalog().await,
                SourceKind::Auto(auto) => auto.catalog().await,
            }
        };
        self.retry.run(catalog, ContextError::retry).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(source: SourceRef, host: Option<&str>) -> Context {
        Context {
            text: String::new(),
            source,
            mime_type: None,
            server_host: host.map(str::to_owned),
        }
    }

    #[test]
    fn labels_name_the_kind_and_hide_hosts_unless_allowed() {
        let resource = |uri: &str| SourceRef::McpResource { uri: uri.into() };
        let prompt = SourceRef::McpPrompt {
            name: "review".into(),
        };
        let cases = [
            (
                resource("ctx://notes/a"),
                None,
                false,
                "MCP resource ctx://notes/a",
            ),
            (
                resource("https://wiki.internal/a"),
                None,
                false,
                "MCP resource",
            ),
            (
                resource("https://wiki.internal/a"),
                None,
                true,
                "MCP resource https://wiki.internal/a",
            ),
            (
                prompt.clone(),
                Some("10.0.0.5:8000"),
                false,
                "MCP prompt review",
            ),
            (
                prompt,
                Some("10.0.0.5:8000"),
                true,
                "MCP prompt review on 10.0.0.5:8000",
            ),
            (
                SourceRef::Rest { name: "n".into() },
                None,
                true,
                "REST context",
            ),
        ];
        for (source, host, show, expected) in cases {
            assert_eq!(context(source, host).label(show), expected);
        }
    }

    #[test]
    fn credentials_are_taken_out_of_uris() {
        assert_eq!(
            without_credentials("https://user:pw@host/x?q=1"),
            "https://host/x?q=1"
        );
        assert_eq!(without_credentials("ctx://notes/a"), "ctx://notes/a");
        assert_eq!(without_credentials("not a uri"), "not a uri");
        let url = url::Url::parse("http://user:pw@10.0.0.5:8000/mcp").expect("url");
        assert_eq!(host_of(&url).as_deref(), Some("10.0.0.5:8000"));
    }
}

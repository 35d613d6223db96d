//! `MCP_PROTOCOL=auto`: on first use, try an MCP handshake (either era); if the server does
//! not speak MCP but answers the REST contract, use REST. The decision is logged and kept.

use std::sync::OnceLock;

use tokio::sync::Mutex;

use super::{Catalog, Context, ContextError, McpSource, PromptArguments, RestContextSource};
use crate::domain::ContextName;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Mcp,
    Rest,
}

/// A source that decides its protocol on first use.
#[derive(Debug)]
pub struct AutoSource {
    mcp: McpSource,
    rest: RestContextSource,
    decided: OnceLock<Kind>,
    deciding: Mutex<()>,
}

impl AutoSource {
    /// Both candidates for the same server.
    pub fn new(mcp: McpSource, rest: RestContextSource) -> Self {
        Self {
            mcp,
            rest,
            decided: OnceLock::new(),
            deciding: Mutex::new(()),
        }
    }

    /// Fetches with the decided protocol, deciding first if needed.
    pub async fn fetch(
        &self,
        name: &ContextName,
        arguments: &PromptArguments,
    ) -> Result<Context, ContextError> {
        let kind = match self.decided.get() {
            Some(kind) => *kind,
            None => {
                let _deciding = self.deciding.lock().await;
                match self.decided.get() {
                    Some(kind) => *kind,
                    None => return self.decide_with(name, arguments).await,
                }
            }
        };
        match kind {
            Kind::Mcp => self.mcp.fetch(name, arguments).await,
            Kind::Rest => self.rest.fetch(name).await,
        }
    }

    /// The REST source, once REST has been decided: the caller can then fetch from it
    /// directly, without this source's far larger future (it also holds the MCP path).
    pub fn decided_rest(&self) -> Option<&RestContextSource> {
        matches!(self.decided.get(), Some(Kind::Rest)).then_some(&self.rest)
    }

    /// Whether the server can be reached with the decided protocol (deciding first if need
    /// be).
    pub async fn probe(&self) -> Result<(), ContextError> {
        match self.settle().await? {
            Kind::Mcp => self.mcp.connect().await,
            Kind::Rest => self.rest.probe().await,
        }
    }

    /// Lists what an MCP server offers; REST has no listing.
    pub async fn catalog(&self) -> Result<Catalog, ContextError> {
        match self.settle().await? {
            Kind::Rest => Err(ContextError::ListingUnsupported),
            Kind::Mcp => self.mcp.catalog().await,
        }
    }

    /// The protocol, decided on the first clear answer: MCP when the handshake succeeds,
    /// REST when it fails but the server answers HTTP. An unreachable server decides nothing.
    async fn settle(&self) -> Result<Kind, ContextError> {
        if let Some(kind) = self.decided.get() {
            return Ok(*kind);
        }
        let _deciding = self.deciding.lock().await;
        if let Some(kind) = self.decided.get() {
            return Ok(*kind);
        }
        match self.mcp.connect().await {
            Ok(()) => {
                self.decide(Kind::Mcp, "the MCP handshake succeeded");
                Ok(Kind::Mcp)
            }
            Err(mcp_error) => {
                self.rest.probe().await?;
                self.decide(
                    Kind::Rest,
                    &format!("no MCP handshake ({mcp_error}) but the server answers HTTP"),
                );
                Ok(Kind::Rest)
            }
        }
    }

    /// MCP if the handshake succeeds; else REST, kept only if the server answered the REST
    /// contract (a context or a 404), so an unreachable server decides nothing.
    async fn decide_with(
        &self,
        name: &ContextName,
        arguments: &PromptArguments,
    ) -> Result<Context, ContextError> {
        let mcp_error = match self.mcp.connect().await {
            Ok(()) => {
                self.decide(Kind::Mcp, "the MCP handshake succeeded");
                return self.mcp.fetch(name, arguments).await;
            }
            Err(error) => error,
        };
        let result = self.rest.fetch(name).await;
        match &result {
            Ok(_) | Err(ContextError::NotFound { .. }) => {
                self.decide(
                    Kind::Rest,
                    &format!("no MCP handshake ({mcp_error}) but the REST contract answered"),
                );
            }
            Err(rest_error) => {
                tracing::warn!(%mcp_error, %rest_error, "context server speaks neither MCP nor REST yet; will try again")
            }
        }
        result
    }

    fn decide(&self, kind: Kind, why: &str) {
        if self.decided.set(kind).is_ok() {
            tracing::info!(protocol = ?kind, reason = why, "context server protocol decided");
        }
    }
}

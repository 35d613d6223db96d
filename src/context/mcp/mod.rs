//! Contexts from an MCP server: a name resolves to a resource (by URI, name or title) or a
//! prompt, over one shared session.

mod content;
mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{ErrorCode, ErrorData, GetPromptRequestParams, ReadResourceRequestParams};
use tokio::sync::Mutex;

pub use session::McpTarget;
use session::Session;

use super::{
    Catalog, Context, ContextError, PromptArgumentEntry, PromptArguments, PromptEntry,
    ResourceEntry, SourceRef,
};
use crate::domain::ContextName;

/// How long a listing of resources and prompts is reused for name lookups.
const CATALOG_TTL: Duration = Duration::from_secs(30);
/// A name not in a listing older than this triggers one fresh listing.
const CATALOG_RECHECK: Duration = Duration::from_secs(2);

/// An MCP server as a context source.
#[derive(Debug)]
pub struct McpSource {
    session: Session,
    catalog: Mutex<Option<(Instant, Arc<Catalog>)>>,
}

impl McpSource {
    /// A source for `target`; connects on first use.
    pub fn new(target: McpTarget, http: reqwest::Client, timeout: Duration) -> Self {
        Self {
            session: Session::new(target, http, timeout),
            catalog: Mutex::new(None),
        }
    }

    /// Connects now, if not connected.
    pub async fn connect(&self) -> Result<(), ContextError> {
        self.session.connect().await
    }

    /// Resolves `name`: a URI is read as is; otherwise a resource whose name or title equals
    /// it, else a prompt of that name, else not found with close names.
    #[tracing::instrument(level = "debug", skip_all, fields(context_name = %name))]
    pub async fn fetch(
        &self,
        name: &ContextName,
        arguments: &PromptArguments,
    ) -> Result<Context, ContextError> {
        let name = name.as_str();
        if name.contains("://") {
            return self.read(name).await;
        }
        let mut catalog = self.cached_catalog(CATALOG_TTL).await?;
        if find(&catalog, name).is_none() {
            catalog = self.cached_catalog(CATALOG_RECHECK).await?;
        }
        match find(&catalog, name) {
            Some(Found::Resource(uri)) => self.read(&uri).await,
            Some(Found::Prompt(prompt)) => {
                check_required(prompt, arguments)?;
                self.prompt(name, arguments).await
            }
            None => Err(ContextError::NotFound {
                name: name.to_owned(),
                suggestions: suggestions(&catalog, name),
            }),
        }
    }

    /// Lists resources and prompts (fresh, and refreshes the lookup cache).
    pub async fn catalog(&self) -> Result<Catalog, ContextError> {
        Ok(self.cached_catalog(Duration::ZERO).await?.as_ref().clone())
    }

    async fn read(&self, uri: &str) -> Result<Context, ContextError> {
        let params = ReadResourceRequestParams::new(uri);
        let result = self
            .session
            .call(|peer| {
                let params = params.clone();
                async move { peer.read_resource(params).await }
            })
            .await?;
        match result {
            Ok(read) => Ok(Context {
                text: content::resource_text(&read.contents),
                mime_type: content::mime_type(&read.contents),
                source: SourceRef::McpResource {
                    uri: super::without_credentials(uri),
                },
                server_host: self.session.target().host(),
            }),
            Err(error) if is_not_found(&error) => Err(ContextError::NotFound {
                name: uri.to_owned(),
                suggestions: Vec::new(),
            }),
            Err(error) => Err(ContextError::Mcp(error.message.to_string())),
        }
    }

    async fn prompt(
        &self,
        name: &str,
        arguments: &PromptArguments,
    ) -> Result<Context, ContextError> {
        let arguments: serde_json::Map<String, serde_json::Value> = arguments
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let params = GetPromptRequestParams::new(name).with_arguments(arguments);
        let result = self
            .session
            .call(|peer| {
                let params = params.clone();
                async move { peer.get_prompt(params).await }
            })
            .await?;
        match result {
            Ok(prompt) => Ok(Context {
                text: content::prompt_text(&prompt.messages),
                mime_type: None,
                source: SourceRef::McpPrompt {
                    name: name.to_owned(),
                },
                server_host: self.session.target().host(),
            }),
            // The prompt exists (it is listed), so invalid params means bad arguments.
            Err(error) if is_not_found(&error) => {
                Err(ContextError::InvalidArguments(error.message.to_string()))
            }
            Err(error) => Err(ContextError::Mcp(error.message.to_string())),
        }
    }

    /// The listing, fetched again when older than `max_age`.
    async fn cached_catalog(&self, max_age: Duration) -> Result<Arc<Catalog>, ContextError> {
        let mut cached = self.catalog.lock().await;
        if let Some((fetched, catalog)) = cached.as_ref()
            && fetched.elapsed() < max_age
        {
            return Ok(Arc::clone(catalog));
        }
        let catalog = Arc::new(self.list().await?);
        *cached = Some((Instant::now(), Arc::clone(&catalog)));
        Ok(catalog)
    }

    async fn list(&self) -> Result<Catalog, ContextError> {
        let resources = self
            .session
            .call(|peer| async move { peer.list_all_resources().await })
            .await?;
        let prompts = self
            .session
            .call(|peer| async move { peer.list_all_prompts().await })
            .await?;
        Ok(Catalog {
            resources: unsupported_as_empty(resources)?
                .into_iter()
                .map(|r| ResourceEntry {
                    name: r.name.clone(),
                    title: r.title.clone(),
                    uri: r.uri.clone(),
                    mime_type: r.mime_type.clone(),
                })
                .collect(),
            prompts: unsupported_as_empty(prompts)?
                .into_iter()
                .map(|p| PromptEntry {
                    name: p.name,
                    arguments: p
                        .arguments
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| PromptArgumentEntry {
                            name: a.name,
                            required: a.required.unwrap_or(false),
                            description: a.description,
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}

enum Found<'a> {
    Resource(String),
    Prompt(&'a PromptEntry),
}

fn find<'a>(catalog: &'a Catalog, name: &str) -> Option<Found<'a>> {
    catalog
        .resources
        .iter()
        .find(|r| r.name == name || r.title.as_deref() == Some(name))
        .map(|r| Found::Resource(r.uri.clone()))
        .or_else(|| {
            catalog
                .prompts
                .iter()
                .find(|p| p.name == name)
                .map(Found::Prompt)
        })
}

/// Refuses a prompt call missing a required argument before it is sent: servers answer
/// that case inconsistently (the Python SDK with a bare "Internal server error").
fn check_required(prompt: &PromptEntry, arguments: &PromptArguments) -> Result<(), ContextError> {
    let missing: Vec<&str> = prompt
        .arguments
        .iter()
        .filter(|a| a.required && !arguments.contains_key(&a.name))
        .map(|a| a.name.as_str())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ContextError::InvalidArguments(format!(
            "prompt {} needs the argument(s) {}",
            prompt.name,
            missing.join(", ")
        )))
    }
}

/// Up to five names close to `name`, closest first.
fn suggestions(catalog: &Catalog, name: &str) -> Vec<String> {
    let wanted = name.to_lowercase();
    let mut scored: Vec<(f64, String)> = catalog
        .resources
        .iter()
        .map(|r| r.name.clone())
        .chain(catalog.prompts.iter().map(|p| p.name.clone()))
        .map(|candidate| {
            let lower = candidate.to_lowercase();
            let score = if lower.contains(&wanted) || wanted.contains(&lower) {
                1.0
            } else {
                strsim::jaro_winkler(&lower, &wanted)
            };
            (score, candidate)
        })
        .filter(|(score, _)| *score >= 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(5).map(|(_, name)| name).collect()
}

/// −32002 (legacy) and −32602 (2026-07-28, and what real servers send) both mean not found.
fn is_not_found(error: &ErrorData) -> bool {
    error.code == ErrorCode::RESOURCE_NOT_FOUND || error.code == ErrorCode::INVALID_PARAMS
}

/// A server without resources or prompts answers "method not found" to their listing.
fn unsupported_as_empty<T>(result: Result<Vec<T>, ErrorData>) -> Result<Vec<T>, ContextError> {
    match result {
        Ok(items) => Ok(items),
        Err(error) if error.code == ErrorCode::METHOD_NOT_FOUND => Ok(Vec::new()),
        Err(error) => Err(ContextError::Mcp(error.message.to_string())),
    }
}

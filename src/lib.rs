//! mcp-asana-linker: posts named contexts from an MCP server into Asana tasks, and owns the
//! Asana side (OAuth consent, token storage and refresh).

pub mod allocator;
pub mod app;
pub mod asana;
pub mod cli;
pub mod config;
pub(crate) mod context;
pub(crate) mod domain;
pub(crate) mod http;
pub(crate) mod idempotency;
pub mod mcp_server;
pub(crate) mod render;
pub(crate) mod service;
pub mod store;
pub mod telemetry;
pub(crate) mod util;
pub mod webhooks;

pub use app::{AppState, Application};
pub use config::Settings;
pub use domain::Workspace;
pub use service::keys::PersonalKeys;

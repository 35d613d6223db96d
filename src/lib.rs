//! mcp-asana-linker: posts named contexts from an MCP server into Asana tasks, and owns the
//! Asana side (OAuth consent, token storage and refresh).

pub mod access;
pub mod app;
pub mod asana;
pub mod atomic_file;
pub mod attach;
pub mod base_url;
pub mod cli;
pub mod config;
pub mod connect;
pub mod context;
pub mod domain;
pub mod error;
pub mod idempotency;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod random;
pub mod readiness;
pub mod render;
pub mod request_id;
pub mod retry;
pub mod routes;
pub mod telemetry;
pub mod webhooks;

pub use app::{AppState, Application};
pub use config::Settings;

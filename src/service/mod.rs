//! The service layer: what the HTTP routes, the CLI and the webhook workers call.

pub mod attach;
pub mod connect;
pub mod home;
pub mod keys;
pub mod posted;
pub mod readiness;
pub mod shared;
pub mod tasks;

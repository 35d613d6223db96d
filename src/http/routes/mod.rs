//! HTTP handlers, one file per resource; each extracts, calls one function, maps the result.

pub mod attach;
pub mod contexts;
pub mod health;
pub mod home;
pub mod oauth;
pub mod operations;
pub mod webhooks;

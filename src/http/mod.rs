//! The HTTP edge: routes (thin handlers), access checks, the one error envelope, OpenAPI.

pub mod access;
pub mod error;
pub mod openapi;
pub mod pages;
pub mod routes;

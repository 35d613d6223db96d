//! Black-box tests: the real router on a random port, Asana and the context server faked
//! with wiremock, assertions on what crosses the wire.

mod access;
mod attach;
mod binary;
mod browser;
mod errors;
mod helpers;
mod home;
mod mcp;
mod mcp_fixture;
mod mcp_server;
mod oauth;
mod openapi_conformance;
mod operations;
mod people;
mod refresh;
mod replicas;
mod resilience;
mod rich;
mod webhooks;

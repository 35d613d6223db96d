//! The OpenAPI 3.1 document of the service's own API, generated from the handlers' annotations
//! (utoipa), so it cannot drift from the router.

use serde::Serialize;
use utoipa::OpenApi;

/// The document's fixed parts; paths are added by the router as routes are registered.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mcp-asana-linker",
        description = "Posts named contexts from an MCP server into Asana tasks."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Probes, metrics and this document"),
        (name = "oauth", description = "Connecting an Asana account (browser pages)"),
        (name = "contexts", description = "Attaching contexts to tasks"),
        (name = "webhooks", description = "Asana webhook deliveries"),
    )
)]
pub struct ApiDoc;

/// Every error: `{"error": {"code", "message", "request_id"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code to match on.
    pub code: String,
    /// For people.
    pub message: String,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
}

/// Declares the `LINKER_API_KEY` bearer scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "api_key",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

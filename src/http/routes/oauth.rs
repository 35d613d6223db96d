//! `GET /asana/oauth/authorize` and `GET /asana/oauth/callback`: the browser side of consent,
//! answered with small HTML pages that never show a token.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::app::AppState;
use crate::asana::{CONSENT_TTL, OAuthError};
use crate::http::error::ApiError;
use crate::http::pages::{cookie, escape, message as page, set_cookie, set_header};
use crate::service::connect::{self, CallbackParams, ConnectError};
use crate::util::cause_chain;

/// Cookie carrying a consent in progress (sealed) in the browser that started it.
const CONSENT_COOKIE: &str = "linker_consent";

/// Redirects to Asana's consent page (state and PKCE) and sets the state cookie.
#[utoipa::path(get, path = "/asana/oauth/authorize", tag = "oauth", responses(
    (status = 303, description = "Redirect to Asana's consent page"),
    (status = 503, description = "OAuth settings missing", body = crate::http::openapi::ErrorBody),
))]
pub async fn authorize(State(state): State<Arc<AppState>>) -> Response {
    let (url, consent) = match connect::start(&state) {
        Ok(started) => started,
        Err(ConnectError::NotConfigured(missing)) => {
            return ApiError::NotConfigured(missing).into_response();
        }
        Err(other) => return ApiError::Internal(cause_chain(&other)).into_response(),
    };
    let cookie = set_cookie(
        CONSENT_COOKIE,
        &consent,
        "/asana/oauth",
        CONSENT_TTL.as_secs(),
        state.secure_cookies,
    );
    let mut response = Redirect::to(url.as_str()).into_response();
    set_header(&mut response, header::SET_COOKIE, &cookie);
    set_header(&mut response, header::CACHE_CONTROL, "no-store");
    response
}

/// Checks the state, exchanges the code, stores the tokens, and says who is connected.
#[utoipa::path(get, path = "/asana/oauth/callback", tag = "oauth",
    params(
        ("code" = Option<String>, Query, description = "Authorization code"),
        ("state" = Option<String>, Query, description = "The state handed out"),
        ("error" = Option<String>, Query, description = "Asana's error, e.g. access_denied"),
    ),
    responses(
        (status = 303, description = "Connected: a session cookie, and on to the home page"),
        (status = 400, description = "HTML page: invalid state, denied or refused code", content_type = "text/html"),
        (status = 502, description = "HTML page: Asana failed", content_type = "text/html"),
    ))]
pub async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<CallbackParams>, QueryRejection>,
) -> Response {
    let params = query.map(|Query(p)| p).unwrap_or_default();
    let browser_cookie = cookie(&headers, CONSENT_COOKIE);
    let mut response = match connect::finish(&state, params, browser_cookie.as_deref()).await {
        // Post/redirect/get: the home page says who is connected, and a reload of it never
        // replays a spent consent.
        Ok(user) => match crate::service::home::sign_in(&state, &user.gid).await {
            Ok(session) => {
                let mut response = Redirect::to("/").into_response();
                set_header(
                    &mut response,
                    header::SET_COOKIE,
                    &crate::http::routes::home::session_cookie(&session, state.secure_cookies),
                );
                set_header(&mut response, header::CACHE_CONTROL, "no-store");
                response
            }
            Err(error) => {
                tracing::error!(error = %cause_chain(&error), "connected, but no session could be opened");
                page(
                    StatusCode::OK,
                    "Connected",
                    &format!(
                        "Connected to Asana as {}, but the linker's store could not open a session; see the service log.",
                        escape(&user.name)
                    ),
                )
            }
        },
        Err(error) => failure_page(&error),
    };
    // The state is spent either way.
    set_header(
        &mut response,
        header::SET_COOKIE,
        &set_cookie(CONSENT_COOKIE, "", "/asana/oauth", 0, state.secure_cookies),
    );
    response
}

fn failure_page(error: &ConnectError) -> Response {
    let again = r#"<a href="/asana/oauth/authorize">Start again</a>."#;
    match error {
        ConnectError::Denied { error } if error == "access_denied" => page(
            StatusCode::BAD_REQUEST,
            "Access denied",
            &format!("You declined access in Asana, so nothing was stored. {again}"),
        ),
        ConnectError::Denied { error } => page(
            StatusCode::BAD_REQUEST,
            "Asana reported an error",
            &format!("Asana returned <code>{}</code>. {again}", escape(error)),
        ),
        ConnectError::InvalidState | ConnectError::MissingCode => page(
            StatusCode::BAD_REQUEST,
            "Invalid sign-in link",
            &format!("This sign-in link is invalid, expired or was already used. {again}"),
        ),
        ConnectError::Exchange(OAuthError::Rejected { .. }) => {
            tracing::warn!(error = %cause_chain(error), "Asana refused the authorization code");
            page(
                StatusCode::BAD_REQUEST,
                "Authorization refused",
                &format!("Asana refused the authorization code; it may have expired. {again}"),
            )
        }
        ConnectError::Exchange(OAuthError::Timeout) => page(
            StatusCode::GATEWAY_TIMEOUT,
            "Asana did not answer",
            &format!("Asana did not answer in time. {again}"),
        ),
        ConnectError::NotConfigured(missing) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not configured",
            &format!(
                "OAuth is not configured: set {}.",
                escape(&missing.join(", "))
            ),
        ),
        ConnectError::Exchange(_) | ConnectError::Profile(_) => {
            tracing::error!(error = %cause_chain(error), "consent failed upstream");
            page(
                StatusCode::BAD_GATEWAY,
                "Asana failed",
                &format!("Asana could not complete the connection. {again}"),
            )
        }
        ConnectError::NotAllowed(workspaces) => page(
            StatusCode::FORBIDDEN,
            "Not for your workspace",
            &format!(
                "This linker connects people of its own Asana workspaces only, and yours ({}) is not one of them, so nothing was stored. Ask whoever runs it to add your workspace to <code>ALLOWED_WORKSPACES</code>.",
                escape(&workspaces.join(", "))
            ),
        ),
        ConnectError::Store(_) | ConnectError::Pending(_) => {
            tracing::error!(error = %cause_chain(error), "consent failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not stored",
                &format!("The linker's store did not answer; see the service log. {again}"),
            )
        }
    }
}

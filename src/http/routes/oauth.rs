//! `GET /asana/oauth/authorize` and `GET /asana/oauth/callback`: the browser side of consent,
//! answered with small HTML pages that never show a token.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::app::AppState;
use crate::asana::OAuthError;
use crate::http::error::ApiError;
use crate::service::connect::{self, CallbackParams, ConnectError};
use crate::util::cause_chain;

/// What every page carries: no scripts, styles, frames or forms from anywhere, no framing by
/// others, no MIME sniffing, no caching, no referrer.
const PAGE_HEADERS: [(header::HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// Cookie binding a consent's `state` to the browser that started it.
const STATE_COOKIE: &str = "linker_oauth_state";

/// Redirects to Asana's consent page (state and PKCE) and sets the state cookie.
#[utoipa::path(get, path = "/asana/oauth/authorize", tag = "oauth", responses(
    (status = 303, description = "Redirect to Asana's consent page"),
    (status = 503, description = "OAuth settings missing", body = crate::http::openapi::ErrorBody),
))]
pub async fn authorize(State(state): State<Arc<AppState>>) -> Response {
    let (url, consent_state) = match connect::start(&state).await {
        Ok(started) => started,
        Err(ConnectError::NotConfigured(missing)) => {
            return ApiError::NotConfigured(missing).into_response();
        }
        Err(ConnectError::Busy) => return ApiError::ConsentsBusy.into_response(),
        Err(ConnectError::Pending(error)) => {
            return ApiError::StoreUnavailable(cause_chain(&error)).into_response();
        }
        Err(other) => return ApiError::Internal(cause_chain(&other)).into_response(),
    };
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{STATE_COOKIE}={consent_state}; HttpOnly; SameSite=Lax; Path=/asana/oauth; Max-Age=600{secure}"
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
        (status = 200, description = "HTML page: connected", content_type = "text/html"),
        (status = 400, description = "HTML page: invalid state, denied or refused code", content_type = "text/html"),
        (status = 502, description = "HTML page: Asana failed", content_type = "text/html"),
    ))]
pub async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<CallbackParams>, QueryRejection>,
) -> Response {
    let params = query.map(|Query(p)| p).unwrap_or_default();
    let browser_state = cookie(&headers, STATE_COOKIE);
    let mut response = match connect::finish(&state, params, browser_state.as_deref()).await {
        Ok(user) => page(
            StatusCode::OK,
            "Connected",
            &format!("Connected to Asana as {}.", escape(&user.name)),
        ),
        Err(error) => failure_page(&error),
    };
    // The state is spent either way.
    set_header(
        &mut response,
        header::SET_COOKIE,
        &format!("{STATE_COOKIE}=; HttpOnly; SameSite=Lax; Path=/asana/oauth; Max-Age=0"),
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
        ConnectError::Store(_) | ConnectError::Pending(_) | ConnectError::Busy => {
            tracing::error!(error = %cause_chain(error), "consent failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not stored",
                &format!("The linker's store did not answer; see the service log. {again}"),
            )
        }
    }
}

fn page(status: StatusCode, title: &str, message_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{message_html}</p></body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    for (name, value) in PAGE_HEADERS {
        set_header(&mut response, name, value);
    }
    response
}

fn set_header(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(name, value);
    }
}

/// The value of cookie `name`, if the browser sent it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;"
        );
    }

    #[test]
    fn cookie_finds_the_named_value_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; linker_oauth_state=abc; b=2"),
        );
        assert_eq!(cookie(&headers, STATE_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}

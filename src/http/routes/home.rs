//! `GET /`: the home page. Signed out, it says what the linker does and offers "Connect
//! Asana"; signed in (a session cookie set by the consent), it says who is connected, shows a
//! new personal key once, a ready-to-paste `curl`, the last attaches, and the forms for a new
//! key and for disconnecting (`POST /keys/new`, `POST /disconnect`, each with a CSRF token).
//! Works without JavaScript; the one script only adds a copy button.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::{ExposeSecret, SecretString};

use crate::app::AppState;
use crate::http::pages::{cookie, escape, message, page, set_cookie, set_header};
use crate::service::home::{SESSION_COOKIE, SESSION_SECS, Visitor, visitor};
use crate::store::PostedStory;
use crate::util::cause_chain;

const STYLE: &str = include_str!("../assets/linker.css");
const SCRIPT: &str = include_str!("../assets/copy.js");

/// The home page.
#[utoipa::path(get, path = "/", tag = "home", responses(
    (status = 200, description = "HTML page: what the linker does, or the signed-in person's connection", content_type = "text/html"),
))]
pub async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let found = visitor(&state, cookie(&headers, SESSION_COOKIE).as_deref()).await;
    match found {
        Ok(Some(visitor)) => signed_in(&state, &visitor).await,
        Ok(None) => signed_out(),
        Err(error) => store_failed(&error),
    }
}

/// Replaces the signed-in person's keys with a new one, shown once on the page it returns to.
#[utoipa::path(post, path = "/keys/new", tag = "home", responses(
    (status = 303, description = "Back to the home page, which shows the new key once"),
    (status = 403, description = "HTML page: the form's CSRF token is missing or wrong", content_type = "text/html"),
))]
pub async fn new_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let visitor = match checked(&state, &headers, &body).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    match visitor.new_key(&state).await {
        Ok(()) => back_home(),
        Err(error) => store_failed(&error),
    }
}

/// Disconnects the signed-in person: revoked at Asana, tokens and keys deleted, signed out.
#[utoipa::path(post, path = "/disconnect", tag = "home", responses(
    (status = 303, description = "Back to the home page, signed out"),
    (status = 403, description = "HTML page: the form's CSRF token is missing or wrong", content_type = "text/html"),
))]
pub async fn disconnect(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let visitor = match checked(&state, &headers, &body).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    match visitor.disconnect(&state).await {
        Ok(()) => {
            let mut response = back_home();
            set_header(
                &mut response,
                header::SET_COOKIE,
                &set_cookie(SESSION_COOKIE, "", "/", 0, state.secure_cookies),
            );
            response
        }
        Err(error) => store_failed(&error),
    }
}

/// The page's stylesheet.
#[utoipa::path(get, path = "/assets/linker.css", tag = "home", responses(
    (status = 200, description = "CSS", content_type = "text/css"),
))]
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// The copy button's script.
#[utoipa::path(get, path = "/assets/copy.js", tag = "home", responses(
    (status = 200, description = "JavaScript", content_type = "text/javascript"),
))]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The session cookie after a consent, for the callback's redirect to `/`.
pub fn session_cookie(id: &SecretString, secure: bool) -> String {
    set_cookie(
        SESSION_COOKIE,
        id.expose_secret(),
        "/",
        SESSION_SECS,
        secure,
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The session of a form post, if its CSRF token is the session's; else the page to answer.
async fn checked(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Visitor, Response> {
    let visitor = match visitor(state, cookie(headers, SESSION_COOKIE).as_deref()).await {
        Ok(Some(visitor)) => visitor,
        Ok(None) => return Err(back_home()),
        Err(error) => return Err(store_failed(&error)),
    };
    let presented = url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if visitor.csrf_matches(&presented) {
        Ok(visitor)
    } else {
        tracing::warn!(user_gid = %visitor.user_gid, "a home-page form without this session's CSRF token was refused");
        Err(message(
            StatusCode::FORBIDDEN,
            "Form refused",
            r#"This form did not come from this page, or the page is too old. <a href="/">Reload the page</a> and try again."#,
        ))
    }
}

fn back_home() -> Response {
    Redirect::to("/").into_response()
}

fn store_failed(error: &crate::store::StoreError) -> Response {
    tracing::error!(error = %cause_chain(error), "the home page could not read the store");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Not available",
        "The linker's store did not answer; see the service log.",
    )
}

fn signed_out() -> Response {
    page(
        StatusCode::OK,
        "mcp-asana-linker",
        "<p>Posts named contexts from a Model Context Protocol server into Asana tasks, as \
         comments or fields, as you. Connect your Asana account once; you get a personal key \
         for <code>curl</code>, automation and agents.</p>\
         <p><a class=\"button\" href=\"/asana/oauth/authorize\">Connect Asana</a></p>",
    )
}

async fn signed_in(state: &AppState, visitor: &Visitor) -> Response {
    let read = async {
        let tokens = state.store.connection(&visitor.user_gid).await?;
        let workspaces = state.store.workspaces(&visitor.user_gid).await?;
        let posted = state.store.latest_posted(&visitor.user_gid, 10).await?;
        let key = visitor.take_key_to_show(state).await?;
        Ok::<_, crate::store::StoreError>((tokens, workspaces, posted, key))
    };
    let (tokens, workspaces, posted, key) = match read.await {
        Ok(read) => read,
        Err(error) => return store_failed(&error),
    };
    let Some(tokens) = tokens else {
        return signed_out();
    };
    let user = &tokens.user;
    let email = user
        .email
        .as_deref()
        .map(|e| format!(" ({})", escape(e)))
        .unwrap_or_default();
    let workspaces = match workspaces.len() {
        0 => String::new(),
        1 => format!(", workspace {}", escape(&workspaces[0].name)),
        _ => format!(
            ", workspaces {}",
            escape(
                &workspaces
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        ),
    };
    let mut html = format!(
        "<p>Connected as <strong>{}</strong>{email}{workspaces}.</p>",
        escape(&user.name)
    );
    let bearer = match &key {
        Some(key) => {
            let key = escape(key.expose_secret());
            html.push_str(&format!(
                "<section class=\"key\"><h2>Your personal API key</h2>\
                 <p>Shown once: copy it now. It acts as you; keep it secret.</p>\
                 <p><input id=\"key\" readonly size=\"46\" value=\"{key}\" aria-label=\"Personal API key\"> \
                 <button type=\"button\" data-copy=\"key\" hidden>Copy</button></p></section>"
            ));
            key
        }
        None => "$LINKER_KEY".to_owned(),
    };
    html.push_str(&format!(
        "<h2>Attach a context</h2><pre>curl -sS -X POST {}/asana/attach-context \\\n  \
         -H 'Authorization: Bearer {bearer}' \\\n  -H 'Content-Type: application/json' \\\n  \
         -d '{{\"task_gid\": \"TASK_GID\", \"context_name\": \"design_notes\"}}'</pre>",
        escape(&state.public_url)
    ));
    html.push_str(&mcp_snippets(&escape(&state.public_url), &bearer));
    html.push_str("<h2>Your last attaches</h2>");
    html.push_str(&attaches(&posted));
    let csrf = escape(&visitor.csrf);
    html.push_str(&format!(
        "<h2>Your key and connection</h2>\
         <form method=\"post\" action=\"/keys/new\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button>New key</button> <span>the old one stops working</span></form>\
         <form method=\"post\" action=\"/disconnect\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button class=\"danger\">Disconnect</button> <span>revokes the linker's access at Asana \
         and deletes your tokens and keys here</span></form>"
    ));
    page(StatusCode::OK, "Connected", &html)
}

/// How to add the linker to an agent's MCP host, with the key (or its placeholder).
fn mcp_snippets(url: &str, bearer: &str) -> String {
    format!(
        "<h2>Use it from an agent (MCP)</h2>\
         <p>The linker is an MCP server at <code>{url}/mcp</code>: its tools list, preview and \
         attach contexts and find tasks, as you. Claude Code:</p>\
         <pre>claude mcp add --transport http asana-linker {url}/mcp \\\n  \
         --header 'Authorization: Bearer {bearer}'</pre>\
         <p>Cursor (<code>.cursor/mcp.json</code>):</p>\
         <pre>{{\"mcpServers\": {{\"asana-linker\": {{\"url\": \"{url}/mcp\",\n  \
         \"headers\": {{\"Authorization\": \"Bearer {bearer}\"}}}}}}}}</pre>\
         <p>VS Code (<code>.vscode/mcp.json</code>):</p>\
         <pre>{{\"servers\": {{\"asana-linker\": {{\"type\": \"http\", \"url\": \"{url}/mcp\",\n  \
         \"headers\": {{\"Authorization\": \"Bearer {bearer}\"}}}}}}}}</pre>"
    )
}

fn attaches(posted: &[PostedStory]) -> String {
    if posted.is_empty() {
        return "<p>None yet.</p>".to_owned();
    }
    let rows: String = posted
        .iter()
        .map(|story| {
            let task = escape(&story.task_gid);
            let story_gid = escape(&story.story_gid);
            let link = escape(&crate::asana::story_url(&story.task_gid, &story.story_gid));
            format!(
                "<tr><td>{task}</td><td>{}</td>\
                 <td><a href=\"{link}\">comment {story_gid}</a></td>\
                 <td>{}</td></tr>",
                escape(&story.context_name),
                crate::util::time::iso(story.posted_at)
            )
        })
        .collect();
    format!(
        "<table><thead><tr><th>Task</th><th>Context</th><th>In Asana</th><th>When (UTC)</th></tr></thead>\
         <tbody>{rows}</tbody></table>"
    )
}

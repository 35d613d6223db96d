//! Server-rendered HTML pages (the home page, the consent pages): one layout, a strict
//! policy (no script or style but the linker's own files, forms only to itself, no framing,
//! no caching, no referrer), cookies and escaping.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// What every page carries.
const PAGE_HEADERS: [(header::HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// A page titled `title` with `body_html` (already escaped where it holds text from outside).
pub fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · mcp-asana-linker</title>\
         <link rel=\"stylesheet\" href=\"/assets/linker.css\"></head>\
         <body><main><h1>{title}</h1>{body_html}</main>\
         <script src=\"/assets/copy.js\"></script></body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    for (name, value) in PAGE_HEADERS {
        set_header(&mut response, name, value);
    }
    response
}

/// A page with one paragraph of `message_html`.
pub fn message(status: StatusCode, title: &str, message_html: &str) -> Response {
    page(status, title, &format!("<p>{message_html}</p>"))
}

/// Appends a header, skipping a value that is not valid in one.
pub fn set_header(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(name, value);
    }
}

/// The value of cookie `name`, if the browser sent it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure when served over https; `max_age`
/// zero removes it.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; HttpOnly; SameSite=Lax; Path={path}; Max-Age={max_age}{secure}")
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
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
        assert_eq!(
            cookie(&headers, "linker_oauth_state").as_deref(),
            Some("abc")
        );
        assert_eq!(cookie(&headers, "missing"), None);
    }
}

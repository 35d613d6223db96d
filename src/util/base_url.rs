//! An upstream's base URL, parsed once. Endpoint URLs are made from it by setting the path,
//! which skips re-parsing the scheme and host (with its IDNA pass) on every call.

use url::Url;

/// A base URL such as `https://app.asana.com/api/1.0`; its path prefix is kept.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    url: Url,
    /// The base without a trailing slash, e.g. `https://app.asana.com/api/1.0`.
    text: String,
}

impl BaseUrl {
    /// The base `url` (its query and fragment are dropped).
    pub fn new(url: &Url) -> Self {
        let mut url = url.clone();
        url.set_query(None);
        url.set_fragment(None);
        let text = url.as_str().trim_end_matches('/').to_owned();
        Self { url, text }
    }

    /// The URL of `path` under the base. `path` starts with `/` and its segments are already
    /// percent-encoded where needed (gids are digits, names go through `as_path_segment`).
    pub fn join(&self, path: &str) -> Url {
        let mut url = self.url.clone();
        let prefix = self.url.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    /// The base as text, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_urls_keep_the_base_path_and_the_encoded_segments() {
        let parse = |s: &str| Url::parse(s).expect("URL");

        let asana = BaseUrl::new(&parse("http://127.0.0.1:9/api/1.0/"));
        let root = BaseUrl::new(&parse("http://127.0.0.1:9?x=1"));

        assert_eq!(
            asana.join("/tasks/12/stories").as_str(),
            "http://127.0.0.1:9/api/1.0/tasks/12/stories"
        );
        assert_eq!(
            root.join("/contexts/..%2Fx%20y").as_str(),
            "http://127.0.0.1:9/contexts/..%2Fx%20y"
        );
        assert_eq!(asana.as_str(), "http://127.0.0.1:9/api/1.0");
        assert_eq!(root.as_str(), "http://127.0.0.1:9");
    }
}

//! Context sources: where the text of a named context comes from.

mod rest;

pub use rest::RestContextSource;

/// A context's text, ready to post.
#[derive(Debug, Clone)]
pub struct Context {
    /// The text as the source gave it.
    pub text: String,
}

/// A failure to get a context, in the context server's terms.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The server has no context by that name.
    #[error("no context named {0:?}")]
    NotFound(String),
    /// No answer within the timeout.
    #[error("the context server did not answer in time")]
    Timeout,
    /// The server answered with an unexpected status.
    #[error("the context server answered {0}")]
    Status(reqwest::StatusCode),
    /// The request could not be sent or the answer not read.
    #[error("cannot reach the context server")]
    Transport(#[source] reqwest::Error),
    /// A 2xx answer that is not `{"context_text": "…"}`.
    #[error("unexpected answer from the context server: {0}")]
    UnexpectedResponse(String),
}

impl From<reqwest::Error> for ContextError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else {
            Self::Transport(error)
        }
    }
}

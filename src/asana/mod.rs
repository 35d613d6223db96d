//! Everything on Asana's side: OAuth consent, the token store and refresh, the REST client.

mod client;
mod comment;
mod connections;
mod consent;
#[cfg(test)]
mod contract;
mod marker;
mod oauth;
mod token_file;
mod tokens;

pub use client::{
    AsanaClient, AsanaError, CreatedWebhook, FoundTask, Profile, Story, StoryDetails, WebhookInfo,
};
pub use comment::{CommentDraft, find_marked, post_comment};

/// A comment's page in Asana's web app (the task, opened at the story).
pub fn story_url(task_gid: &str, story_gid: &str) -> String {
    format!("https://app.asana.com/0/0/{task_gid}/{story_gid}")
}
pub use connections::Connections;
pub use consent::{CONSENT_TTL, PendingConsents};
pub use marker::Marker;
pub use oauth::{AsanaOAuth, Consent, OAuthError};
pub use token_file::{AsanaUser, StoredTokens, TokenFile, TokenFileError};
pub use tokens::{TokenError, TokenManager, TokenSettings, import_token_file};

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
pub use connections::Connections;
pub use consent::{CONSENT_TTL, PendingConsents};
pub use marker::Marker;
pub use oauth::{AsanaOAuth, Consent, OAuthError};
pub use token_file::{AsanaUser, StoredTokens, TokenFile, TokenFileError};
pub use tokens::{TokenError, TokenManager, TokenSettings, import_token_file};

//! Posting a comment without ever posting it twice: an attempt that may have reached Asana
//! is followed by a look at the task's stories before anything is sent again.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::client::{AsanaClient, AsanaError, ListedStory, Story};
use crate::domain::TaskGid;
use crate::render::{CommentBody, text_content};
use crate::retry::{Retry, RetryPolicy};

/// Pages of stories read when looking for our comment (100 stories each).
const MAX_PAGES: usize = 20;
/// Clock skew allowed between us and Asana when comparing creation times.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// Who is posting and what, for recognising the comment among a task's stories.
#[derive(Debug, Clone, Copy)]
pub struct CommentDraft<'a> {
    /// The task.
    pub task: &'a TaskGid,
    /// The comment.
    pub body: &'a CommentBody,
    /// Pin it.
    pub pin: bool,
    /// The gid of the user the token belongs to.
    pub author_gid: Option<&'a str>,
}

/// Posts the comment under the retry policy. After a failure that may have created it
/// (timeout, 5xx, connection lost mid-request) the task's stories are read first: the comment
/// found there is the answer; only if it is absent is it posted again. If that check itself
/// fails, the original failure is returned rather than risking a duplicate.
pub async fn post_comment(
    asana: &AsanaClient,
    policy: &RetryPolicy,
    token: &SecretString,
    draft: CommentDraft<'_>,
) -> Result<Story, AsanaError> {
    let first_attempt = Utc::now();
    let mut attempts = policy.start();
    loop {
        let error = match asana
            .create_story(token, draft.task, draft.body, draft.pin)
            .await
        {
            Ok(story) => return Ok(story),
            Err(error) => error,
        };
        let mut retry = error.retry();
        if error.may_have_written() {
            let Some(author) = draft.author_gid else {
                return Err(error);
            };
            match find_comment(asana, token, draft, author, first_attempt).await {
                Ok(Some(story)) => {
                    tracing::info!(story_gid = %story.gid, %error, "the failed attempt did create the comment");
                    return Ok(story);
                }
                Ok(None) => {
                    tracing::warn!(%error, "the comment was not created; posting again");
                    retry = Retry::Backoff;
                }
                Err(check) => {
                    tracing::error!(%error, %check, "cannot tell whether the comment was created; not posting again");
                    return Err(error);
                }
            }
        }
        match attempts.next_wait(retry) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return Err(error),
        }
    }
}

/// The comment with our text by our user created since `since`, if the task has one.
async fn find_comment(
    asana: &AsanaClient,
    token: &SecretString,
    draft: CommentDraft<'_>,
    author: &str,
    since: DateTime<Utc>,
) -> Result<Option<Story>, AsanaError> {
    let wanted = squeeze(&draft.body.visible_text());
    let mut offset: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = asana
            .stories_page(token, draft.task, offset.as_deref())
            .await?;
        if let Some(story) = page
            .data
            .iter()
            .find(|story| is_our_comment(story, &wanted, author, since))
        {
            return Ok(Some(Story {
                gid: story.gid.clone(),
            }));
        }
        match page.next_page {
            Some(next) => offset = Some(next.offset),
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// Text without whitespace: Asana may re-flow what it stores.
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A comment by `author` since `since` whose visible text (without whitespace) is `wanted`.
fn is_our_comment(story: &ListedStory, wanted: &str, author: &str, since: DateTime<Utc>) -> bool {
    let visible = match (&story.html_text, &story.text) {
        (Some(html), _) => text_content(html),
        (None, Some(text)) => text.clone(),
        (None, None) => return false,
    };
    let recent = story
        .created_at
        .as_deref()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .is_some_and(|at| at.with_timezone(&Utc) >= since - CLOCK_SKEW);
    story.resource_subtype.as_deref() == Some("comment_added")
        && story.created_by.as_ref().is_some_and(|by| by.gid == author)
        && squeeze(&visible) == wanted
        && recent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asana::client::Author;

    fn story(text: &str, author: &str, created_at: &str) -> ListedStory {
        ListedStory {
            gid: "1".into(),
            text: Some(text.into()),
            html_text: None,
            resource_subtype: Some("comment_added".into()),
            created_at: Some(created_at.into()),
            created_by: Some(Author { gid: author.into() }),
        }
    }

    #[test]
    fn only_a_recent_comment_with_our_text_by_our_user_matches() {
        let since = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let ours = story("notes", "42", "2026-11-25T12:00:05.123Z");
        assert!(is_our_comment(&ours, "notes", "42", since));
        assert!(!is_our_comment(
            &story("other", "42", "2026-11-25T12:00:05Z"),
            "notes",
            "42",
            since
        ));
        assert!(!is_our_comment(
            &story("notes", "7", "2026-11-25T12:00:05Z"),
            "notes",
            "42",
            since
        ));
        assert!(!is_our_comment(
            &story("notes", "42", "2026-11-25T11:00:00Z"),
            "notes",
            "42",
            since
        ));
        let mut system = ours.clone();
        system.resource_subtype = Some("assigned".into());
        assert!(!is_our_comment(&system, "notes", "42", since));
    }
}

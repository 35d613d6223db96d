//! Posting a comment without ever posting it twice. Every comment ends with its attach's
//! marker line; after a failure that may have created it, the task's stories are searched
//! for that line, never for the text (an earlier attach of the same context has the same
//! text). A failure without an answer (timeout, connection lost) is never followed by a
//! second post: the creation may still be under way where a read cannot see it yet.

use secrecy::SecretString;

use super::client::{AsanaClient, AsanaError, ListedStory, Story};
use super::marker::Marker;
use crate::domain::TaskGid;
use crate::render::{CommentBody, text_content};
use crate::util::retry::{Retry, RetryPolicy};

/// Pages of stories read when looking for our comments (100 stories each).
const MAX_PAGES: usize = 20;

/// One comment to post and the marker line that ends it.
#[derive(Debug, Clone, Copy)]
pub struct CommentDraft<'a> {
    /// The task.
    pub task: &'a TaskGid,
    /// The comment, ending with `marker_line`.
    pub body: &'a CommentBody,
    /// Pin it.
    pub pin: bool,
    /// The marker line the body ends with.
    pub marker_line: &'a str,
}

/// Posts the comment under the retry policy. After a failure that may have created it, the
/// task's stories are read: the comment found there is the answer. If it is absent and Asana
/// answered (a 5xx), it is posted again; if Asana never answered, or the read fails, the
/// outcome is unknown and [`AsanaError::MaybePosted`] says so instead of risking a duplicate.
pub async fn post_comment(
    asana: &AsanaClient,
    policy: &RetryPolicy,
    token: &SecretString,
    draft: CommentDraft<'_>,
) -> Result<Story, AsanaError> {
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
            let found = find_marked(asana, token, draft.task, &[draft.marker_line]).await;
            match found.map(|mut found| found.pop().flatten()) {
                Ok(Some(story)) => {
                    tracing::info!(task_gid = %draft.task, story_gid = %story.gid, %error, "the failed attempt did create the comment");
                    return Ok(story);
                }
                Ok(None) if error.answered() => {
                    tracing::warn!(task_gid = %draft.task, %error, "the comment was not created; posting again");
                    retry = Retry::Backoff;
                }
                Ok(None) => {
                    tracing::warn!(task_gid = %draft.task, %error, "no answer and no comment yet: it may still be created; not posting again");
                    return Err(AsanaError::MaybePosted(Box::new(error)));
                }
                Err(check) => {
                    tracing::warn!(task_gid = %draft.task, %error, %check, "cannot tell whether the comment was created; not posting again");
                    return Err(AsanaError::MaybePosted(Box::new(error)));
                }
            }
        }
        match attempts.next_wait(retry) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return Err(error),
        }
    }
}

/// For each of `lines`, the comment on the task that ends with it, if any.
pub async fn find_marked(
    asana: &AsanaClient,
    token: &SecretString,
    task: &TaskGid,
    lines: &[&str],
) -> Result<Vec<Option<Story>>, AsanaError> {
    let mut found: Vec<Option<Story>> = vec![None; lines.len()];
    let mut offset: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = asana.stories_page(token, task, offset.as_deref()).await?;
        for story in &page.data {
            let Some(visible) = comment_text(story) else {
                continue;
            };
            for (line, slot) in lines.iter().zip(found.iter_mut()) {
                if slot.is_none() && Marker::ends(&visible, line) {
                    *slot = Some(Story {
                        gid: story.gid.clone(),
                    });
                }
            }
        }
        match page.next_page {
            Some(next) if found.iter().any(Option::is_none) => offset = Some(next.offset),
            _ => break,
        }
    }
    Ok(found)
}

/// The visible text of a comment; `None` for other stories.
fn comment_text(story: &ListedStory) -> Option<String> {
    if story.resource_subtype.as_deref() != Some("comment_added") {
        return None;
    }
    match (&story.html_text, &story.text) {
        (Some(html), _) => Some(text_content(html)),
        (None, Some(text)) => Some(text.clone()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn story(text: &str, subtype: &str) -> ListedStory {
        ListedStory {
            gid: "1".into(),
            text: Some(text.into()),
            html_text: None,
            resource_subtype: Some(subtype.into()),
        }
    }

    #[test]
    fn only_comments_have_text_to_match() {
        assert_eq!(
            comment_text(&story("notes\n\nref 1", "comment_added")).as_deref(),
            Some("notes\n\nref 1")
        );
        assert_eq!(comment_text(&story("ref 1", "assigned")), None);
        let html = ListedStory {
            html_text: Some("<body>a &amp; b\n\n<em>ref 1</em></body>".into()),
            ..story("", "comment_added")
        };
        assert_eq!(comment_text(&html).as_deref(), Some("a & b\n\nref 1"));
    }
}

//! The `posted_stories` table: the comments the linker posted (task, context, story gid,
//! the attach's reference line, time).

use sqlx::Row;

use super::{Store, StoreError};

/// One comment the linker posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedStory {
    /// The comment's gid.
    pub story_gid: String,
    /// The task it is on.
    pub task_gid: String,
    /// The context it carries.
    pub context_name: String,
    /// Its reference line, e.g. `ref 0123456789abcdef.2`.
    pub marker: String,
    /// When it was posted (ms since the Unix epoch).
    pub posted_at: i64,
}

impl Store {
    /// Records `stories` in one transaction (a story recorded before is left as it is).
    pub async fn record_posted(
        &self,
        connection: &str,
        stories: &[PostedStory],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for story in stories {
            sqlx::query(
                "INSERT INTO posted_stories (story_gid, connection, task_gid, context_name, \
                 marker, posted_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (story_gid) DO NOTHING",
            )
            .bind(&story.story_gid)
            .bind(connection)
            .bind(&story.task_gid)
            .bind(&story.context_name)
            .bind(&story.marker)
            .bind(story.posted_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The latest `limit` comments recorded for `connection`, newest first.
    pub async fn latest_posted(
        &self,
        connection: &str,
        limit: i64,
    ) -> Result<Vec<PostedStory>, StoreError> {
        let rows = sqlx::query(
            "SELECT story_gid, task_gid, context_name, marker, posted_at FROM posted_stories \
             WHERE connection = $1 ORDER BY posted_at DESC, story_gid DESC LIMIT $2",
        )
        .bind(connection)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PostedStory {
                    story_gid: row.try_get("story_gid")?,
                    task_gid: row.try_get("task_gid")?,
                    context_name: row.try_get("context_name")?,
                    marker: row.try_get("marker")?,
                    posted_at: row.try_get("posted_at")?,
                })
            })
            .collect()
    }
}

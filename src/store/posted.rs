//! The `posted_stories` table: the comments the linker posted (task, context, story gid,
//! the attach's reference line, time).

use sqlx::Row;

use super::{Store, StoreError};

/// Rows per INSERT statement (6 values each, well under either engine's limit on values).
const ROWS_PER_STATEMENT: usize = 64;

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
    /// Records `stories`, a statement per [`ROWS_PER_STATEMENT`] of them (a story recorded
    /// before is left as it is). Each statement is a round trip to the database (to
    /// SQLite's worker thread), so rows go in groups, not one by one.
    pub async fn record_posted(
        &self,
        connection: &str,
        stories: &[PostedStory],
    ) -> Result<(), StoreError> {
        for group in stories.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO posted_stories (story_gid, connection, task_gid, context_name, \
                 marker, posted_at) VALUES ",
            );
            for i in 0..group.len() {
                let n = i * 6;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6
                ));
            }
            sql.push_str(" ON CONFLICT (story_gid) DO NOTHING");
            // Only placeholders are written into the text; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for story in group {
                query = query
                    .bind(story.story_gid.clone())
                    .bind(connection.to_owned())
                    .bind(story.task_gid.clone())
                    .bind(story.context_name.clone())
                    .bind(story.marker.clone())
                    .bind(story.posted_at);
            }
            query.execute(&self.pool).await?;
        }
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

//! The `posted_stories` table: the comments the linker posted (task, context, story gid,
//! the attach's reference line, time).

use serde::Serialize;
use sqlx::Row;

use super::{Engine, Store, StoreError};

/// A story as it travels to the database, inside one JSON array for the whole batch.
#[derive(Serialize)]
struct Wire<'a> {
    n: &'a str,
    s: &'a str,
    t: &'a str,
    c: &'a str,
    m: &'a str,
    p: i64,
}

/// One comment the linker posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedStory {
    /// The connection (Asana user gid) it was posted as.
    pub connection: String,
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
    /// Records `stories` in one statement, whatever their number (a story recorded before is
    /// left as it is). They travel as one JSON parameter: a statement per row would be a
    /// round trip each (to SQLite's worker thread), and one placeholder per value costs SQLite
    /// a scan of every placeholder name per value bound.
    pub async fn record_posted(&self, stories: &[PostedStory]) -> Result<(), StoreError> {
        if stories.is_empty() {
            return Ok(());
        }
        let rows: Vec<Wire<'_>> = stories
            .iter()
            .map(|story| Wire {
                n: &story.connection,
                s: &story.story_gid,
                t: &story.task_gid,
                c: &story.context_name,
                m: &story.marker,
                p: story.posted_at,
            })
            .collect();
        let json = serde_json::to_string(&rows)?;
        let rows_from_json = match self.url.engine() {
            Engine::Sqlite => {
                "SELECT value ->> '$.s', value ->> '$.n', value ->> '$.t', value ->> '$.c', value ->> '$.m',                  value ->> '$.p' FROM json_each($1) WHERE true"
            }
            Engine::Postgres => {
                "SELECT s, n, t, c, m, p FROM json_to_recordset($1::json) \
                 AS x(n text, s text, t text, c text, m text, p bigint)"
            }
        };
        let sql = format!(
            "INSERT INTO posted_stories (story_gid, connection, task_gid, context_name, marker, \
             posted_at) {rows_from_json} ON CONFLICT (story_gid) DO NOTHING"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(json)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The latest `limit` comments recorded for `connection`, newest first.
    pub async fn latest_posted(
        &self,
        connection: &str,
        limit: i64,
    ) -> Result<Vec<PostedStory>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, story_gid, task_gid, context_name, marker, posted_at \
             FROM posted_stories WHERE connection = $1 ORDER BY posted_at DESC, story_gid DESC LIMIT $2",
        )
        .bind(connection)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PostedStory {
                    connection: row.try_get("connection")?,
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

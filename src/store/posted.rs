//! The `posted_stories` table: the comments the linker posted (task, context, story gid,
//! the attach's reference line, time).

use sqlx::Row;

use super::{Engine, Store, StoreError};

/// Rows an INSERT statement holds, smallest first. A batch goes in as one statement of the
/// smallest size that holds it, its spare rows bound to NULL and left out by the statement, so
/// that a batch is one round trip to SQLite's worker thread (under load, the wake-ups of that
/// thread cost more than the rows) and only these few statements are ever prepared, once per
/// connection. Bigger batches go in as several, in one transaction. The placeholders are
/// anonymous (`?`): for numbered ones (`$1`) sqlx looks up every value's name, and SQLite
/// scans the statement's names for each lookup, so binding grew with the square of the values.
const STATEMENT_ROWS: [usize; 5] = [1, 4, 16, 64, 256];

/// Most rows one statement holds.
const MOST_ROWS: usize = STATEMENT_ROWS[STATEMENT_ROWS.len() - 1];

/// Columns per row.
const COLUMNS: usize = 6;

/// The INSERT statement for each of [`STATEMENT_ROWS`].
fn insert_statement(size: usize) -> &'static str {
    static STATEMENTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let statements = STATEMENTS.get_or_init(|| {
        STATEMENT_ROWS
            .iter()
            .map(|&rows| {
                let row = format!("({})", ["?"; COLUMNS].join(", "));
                let values = vec![row; rows].join(", ");
                // A row of NULLs is padding: story_gid is never NULL in a real one.
                format!(
                    "INSERT INTO posted_stories (story_gid, connection, task_gid, context_name, \
                     marker, posted_at) SELECT * FROM (VALUES {values}) \
                     WHERE column1 IS NOT NULL ON CONFLICT (story_gid) DO NOTHING"
                )
            })
            .collect()
    });
    &statements[size]
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
    /// Records `stories` in one transaction (a story recorded before is left as it is).
    pub async fn record_posted(&self, stories: Vec<PostedStory>) -> Result<(), StoreError> {
        if stories.is_empty() {
            return Ok(());
        }
        match self.url.engine() {
            Engine::Postgres => self.record_posted_as_arrays(&stories).await,
            Engine::Sqlite => self.record_posted_bound(stories).await,
        }
    }

    /// PostgreSQL: the batch as one array parameter per column, unnested by one statement,
    /// since a commit and a round trip per group of rows cost its server more than the rows
    /// themselves (and arrays cost it less to unpack than the same rows as JSON).
    async fn record_posted_as_arrays(&self, stories: &[PostedStory]) -> Result<(), StoreError> {
        let column = |field: fn(&PostedStory) -> &str| text_array(stories.iter().map(field));
        let posted_at: Vec<String> = stories.iter().map(|s| s.posted_at.to_string()).collect();
        sqlx::query(
            "INSERT INTO posted_stories (story_gid, connection, task_gid, context_name, \
             marker, posted_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::bigint[]) \
             ON CONFLICT (story_gid) DO NOTHING",
        )
        .bind(column(|story| &story.story_gid))
        .bind(column(|story| &story.connection))
        .bind(column(|story| &story.task_gid))
        .bind(column(|story| &story.context_name))
        .bind(column(|story| &story.marker))
        .bind(format!("{{{}}}", posted_at.join(",")))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// SQLite: one statement of bound values per [`MOST_ROWS`] stories, since it
    /// has no arrays and unpacks JSON more slowly than it binds; a transaction only when there
    /// is more than one. The texts are moved into the statement, not copied (the driver still
    /// copies each once on its way to SQLite).
    async fn record_posted_bound(&self, stories: Vec<PostedStory>) -> Result<(), StoreError> {
        if stories.len() <= MOST_ROWS {
            insert_bound(stories).execute(&self.pool).await?;
            return Ok(());
        }
        let mut transaction = self.pool.begin().await?;
        let mut stories = stories.into_iter().peekable();
        while stories.peek().is_some() {
            let group: Vec<PostedStory> = stories.by_ref().take(MOST_ROWS).collect();
            insert_bound(group).execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
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

/// The INSERT of `group` (at most [`MOST_ROWS`] stories) with every value bound
/// in order, and NULLs in the rows it does not fill.
fn insert_bound(
    group: Vec<PostedStory>,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let size = STATEMENT_ROWS
        .iter()
        .position(|&rows| rows >= group.len())
        .unwrap_or(STATEMENT_ROWS.len() - 1);
    let spare = STATEMENT_ROWS[size].saturating_sub(group.len());
    let mut query = sqlx::query(insert_statement(size));
    for story in group {
        query = query
            .bind(story.story_gid)
            .bind(story.connection)
            .bind(story.task_gid)
            .bind(story.context_name)
            .bind(story.marker)
            .bind(story.posted_at);
    }
    for _ in 0..spare * COLUMNS {
        query = query.bind(None::<String>);
    }
    query
}

/// A PostgreSQL array literal of `items`, every element quoted (so `NULL`, commas and braces
/// stay text) with `"` and `\` escaped; bound as a parameter, never written into SQL.
fn text_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut array = String::from("{");
    for (i, item) in items.enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                array.push('\\');
            }
            array.push(c);
        }
        array.push('"');
    }
    array.push('}');
    array
}

#[cfg(test)]
mod tests {
    use super::text_array;

    #[test]
    fn array_elements_are_quoted_and_escaped() {
        assert_eq!(
            text_array(["1", "NULL", "a,b {c}", "q\"uote\\", ""].into_iter()),
            r#"{"1","NULL","a,b {c}","q\"uote\\",""}"#
        );
    }
}

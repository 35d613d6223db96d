//! The `mcp_sessions` table: legacy MCP sessions, so that any replica can resume one, each
//! bound to the key that opened it.

use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// A legacy MCP session as stored.
#[derive(Debug, Clone)]
pub struct McpSessionRow {
    /// A hash of the key that opened it (`loopback` without a key).
    pub owner: String,
    /// The client's `initialize` parameters, as JSON.
    pub state: String,
}

impl Store {
    /// Records (or replaces) session `id`, opened by `owner` (acting as `user_gid` for a
    /// personal key).
    pub async fn put_mcp_session(
        &self,
        id: &str,
        owner: &str,
        user_gid: Option<&str>,
        state: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO mcp_sessions (session_id, owner, user_gid, state, created_at, seen_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (session_id) DO UPDATE SET state = excluded.state, seen_at = excluded.seen_at",
        )
        .bind(id)
        .bind(owner)
        .bind(user_gid)
        .bind(state)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Session `id`, if it exists.
    pub async fn mcp_session(&self, id: &str) -> Result<Option<McpSessionRow>, StoreError> {
        let row = sqlx::query("SELECT owner, state FROM mcp_sessions WHERE session_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(McpSessionRow {
                owner: row.try_get("owner")?,
                state: row.try_get("state")?,
            })
        })
        .transpose()
    }

    /// Notes that session `id` is still in use (it is forgotten after a week unused).
    pub async fn touch_mcp_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE mcp_sessions SET seen_at = $1 WHERE session_id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends session `id`.
    pub async fn delete_mcp_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mcp_sessions WHERE session_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

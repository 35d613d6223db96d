//! The `rate_limits` table: when Asana asked a token to hold off (keyed by a short hash of
//! the token, which every replica holding the same connection shares), so that a 429 seen by
//! one replica pauses that connection's calls on every replica, and nobody else's.

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// Records that `connection` is paused until `until_ms`, unless a later pause is kept.
    pub async fn pause(&self, connection: &str, until_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rate_limits (connection, paused_until) VALUES ($1, $2) \
             ON CONFLICT (connection) DO UPDATE SET paused_until = $2 \
             WHERE rate_limits.paused_until < $2",
        )
        .bind(connection)
        .bind(until_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The pauses still running at `now_ms`: (key, until in ms). Ended ones are removed.
    pub async fn pauses(&self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query("DELETE FROM rate_limits WHERE paused_until < $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query("SELECT connection, paused_until FROM rate_limits")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("connection")?, row.try_get("paused_until")?)))
            .collect()
    }
}

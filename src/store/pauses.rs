//! The `rate_limits` table: when Asana asked a connection to hold off, so that a 429 seen by
//! one replica pauses that connection's calls on every replica.

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

    /// Until when (ms) `connection` is paused, if a pause was ever recorded.
    pub async fn paused_until(&self, connection: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query("SELECT paused_until FROM rate_limits WHERE connection = $1")
                .bind(connection)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.try_get("paused_until"))
                .transpose()?,
        )
    }
}

//! The `api_keys` table: personal keys, kept only as SHA-256 hashes, each acting as one
//! connection; revoked keys stay (marked) so a listing can say when.

use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// What the store knows of a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    /// The connection it acts as.
    pub user_gid: String,
    /// Whether it still works (not revoked, and its connection still connected).
    pub active: bool,
}

impl Store {
    /// Records a new key (its hash and a displayable prefix) for `user_gid`.
    pub async fn add_api_key(
        &self,
        key_hash: &str,
        prefix: &str,
        user_gid: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (key_hash, user_gid, prefix, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key_hash)
        .bind(user_gid)
        .bind(prefix)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Who the key with `key_hash` belongs to, if it was ever issued.
    pub async fn api_key_owner(&self, key_hash: &str) -> Result<Option<KeyOwner>, StoreError> {
        let row = sqlx::query(
            "SELECT k.user_gid, k.revoked_at, c.status FROM api_keys k \
             LEFT JOIN connections c ON c.user_gid = k.user_gid WHERE k.key_hash = $1",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let revoked: Option<i64> = row.try_get("revoked_at")?;
        let status: Option<String> = row.try_get("status")?;
        Ok(Some(KeyOwner {
            user_gid: row.try_get("user_gid")?,
            active: revoked.is_none() && status.as_deref() == Some("connected"),
        }))
    }

    /// Notes that the key with `key_hash` was used now.
    pub async fn touch_api_key(&self, key_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key_hash = $2")
            .bind(now_ms())
            .bind(key_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many of `user_gid`'s keys still work.
    pub async fn active_api_keys(&self, user_gid: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM api_keys WHERE user_gid = $1 AND revoked_at IS NULL",
        )
        .bind(user_gid)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }

    /// Revokes every key of `user_gid`; how many were still active.
    pub async fn revoke_api_keys(&self, user_gid: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE user_gid = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(user_gid)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // The MCP sessions those keys opened end with them.
        sqlx::query("DELETE FROM mcp_sessions WHERE user_gid = $1")
            .bind(user_gid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(revoked)
    }
}

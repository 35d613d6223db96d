//! The `sessions` table: home-page sessions, found by a hash of the cookie's id (a dump of the
//! table opens no session), each with its CSRF token and, once, a new key to show.

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// A session as read.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// The person it belongs to.
    pub user_gid: String,
    /// The token every form of the session carries.
    pub csrf: String,
}

impl Store {
    /// Opens a session for `user_gid` until `expires_at` (ms), keyed by `id_hash`.
    pub async fn open_session(
        &self,
        id_hash: &str,
        user_gid: &str,
        csrf: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_gid, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_gid)
        .bind(csrf)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session keyed by `id_hash`, unless it expired.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT user_gid, csrf FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(SessionRow {
                user_gid: row.try_get("user_gid")?,
                csrf: row.try_get("csrf")?,
            })
        })
        .transpose()
    }

    /// Keeps `key` (sealed) to show once on the session's next page.
    pub async fn hold_key_to_show(
        &self,
        id_hash: &str,
        key: &SecretString,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET shown_key = $1 WHERE id_hash = $2")
            .bind(self.sealer.seal(key.expose_secret())?)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The key held to show, removed as it is read: it is shown once, even to two pages
    /// loading at the same time (only the one whose removal takes effect gets it).
    pub async fn take_key_to_show(
        &self,
        id_hash: &str,
    ) -> Result<Option<SecretString>, StoreError> {
        let sealed: Option<String> =
            sqlx::query("SELECT shown_key FROM sessions WHERE id_hash = $1")
                .bind(id_hash)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.try_get("shown_key"))
                .transpose()?
                .flatten();
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let taken = sqlx::query(
            "UPDATE sessions SET shown_key = NULL WHERE id_hash = $1 AND shown_key = $2",
        )
        .bind(id_hash)
        .bind(&sealed)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        Ok(if taken {
            Some(self.sealer.open(&sealed)?)
        } else {
            None
        })
    }

    /// Ends the session keyed by `id_hash`.
    pub async fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

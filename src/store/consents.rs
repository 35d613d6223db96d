//! The `oauth_consents` table: consents started and not yet finished. The state is kept
//! hashed and the PKCE verifier sealed, so a dump of the table cannot finish a consent.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, StoreError, millis, now_ms};

fn state_hash(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    /// Keeps a consent for `ttl`, unless `max` unexpired ones are pending already: `false`
    /// then, and nothing is kept (nothing pending is ever evicted to make room).
    pub async fn begin_consent(
        &self,
        state: &str,
        verifier: &SecretString,
        ttl: Duration,
        max: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        sqlx::query("DELETE FROM oauth_consents WHERE created_at < $1")
            .bind(now - millis(ttl))
            .execute(&self.pool)
            .await?;
        let pending: i64 = sqlx::query("SELECT COUNT(*) AS n FROM oauth_consents")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        if pending >= max {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO oauth_consents (state_hash, verifier, created_at) VALUES ($1, $2, $3)",
        )
        .bind(state_hash(state))
        .bind(self.sealer.seal(verifier.expose_secret())?)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// Takes the verifier of `state` if it was kept less than `ttl` ago; whatever the
    /// outcome, the state cannot be used again.
    pub async fn take_consent(
        &self,
        state: &str,
        ttl: Duration,
    ) -> Result<Option<SecretString>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM oauth_consents WHERE state_hash = $1 RETURNING verifier, created_at",
        )
        .bind(state_hash(state))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let created_at: i64 = row.try_get("created_at")?;
        if created_at < now_ms() - millis(ttl) {
            return Ok(None);
        }
        Ok(Some(
            self.sealer.open(&row.try_get::<String, _>("verifier")?)?,
        ))
    }
}

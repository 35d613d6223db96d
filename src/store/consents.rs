//! What consents need from the store: the key that seals the consent cookie (made once, shared
//! by every replica) and the states already used (`oauth_consents`, hashed, kept for the ten
//! minutes a consent may take), so that a consent finishes once. Nothing is written when a
//! consent starts: it travels in the browser's cookie.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::Row;

use super::{Store, StoreError, millis, now_ms};

fn state_hash(state: &str) -> String {
    crate::util::digest::sha256_hex(state.as_bytes())
}

impl Store {
    /// Records `state` as used: `true` the first time within `ttl`, `false` on a replay.
    pub async fn spend_consent(&self, state: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = now_ms();
        sqlx::query("DELETE FROM oauth_consents WHERE created_at < $1")
            .bind(now - millis(ttl))
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query(
            "INSERT INTO oauth_consents (state_hash, verifier, created_at) VALUES ($1, '', $2) \
             ON CONFLICT (state_hash) DO NOTHING",
        )
        .bind(state_hash(state))
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// The 32-byte key that seals consent cookies: made by the first process that asks and
    /// read by every other one.
    pub async fn cookie_key(&self) -> Result<[u8; 32], StoreError> {
        let fresh = crate::util::random::secret_hex(32);
        sqlx::query(
            "INSERT INTO secrets (name, value, created_at) VALUES ('cookie_key', $1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(self.sealer.seal(&fresh)?)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        let sealed: String = sqlx::query("SELECT value FROM secrets WHERE name = 'cookie_key'")
            .fetch_one(&self.pool)
            .await?
            .try_get("value")?;
        let hex = self.sealer.open(&sealed)?;
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = hex
                .expose_secret()
                .get(2 * i..2 * i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or(StoreError::Unsupported(
                    "the stored cookie key is malformed",
                ))?;
        }
        Ok(key)
    }
}

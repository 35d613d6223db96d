//! The `idempotency_keys` table: a key is claimed (one row, unique) before anything is sent
//! to Asana, held under a lease its owner renews, and ends as an outcome to replay, an
//! unknown outcome to resume, or nothing (the row is deleted).

use std::time::Duration;

use sqlx::Row;

use super::{Store, StoreError, millis, now_ms};

/// Where a claimed key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Its owner is running it now.
    InFlight,
    /// It has an outcome to replay.
    Done,
    /// Its outcome is unknown: the next claim resumes (looks in Asana before writing).
    Unknown,
}

impl KeyState {
    fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::Done => "done",
            Self::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "done" => Self::Done,
            "unknown" => Self::Unknown,
            _ => Self::InFlight,
        }
    }
}

/// A key's row as read.
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// The request body's fingerprint.
    pub fingerprint: String,
    /// Where it stands.
    pub state: KeyState,
    /// Until when (ms) its owner holds it.
    pub lease_until: i64,
    /// The outcome's status and JSON body, once done or unknown.
    pub outcome: Option<(u16, String)>,
    /// When the key was first claimed (ms).
    pub created_at: i64,
    /// When the row last changed (ms): a take-over names it, so two never take one row.
    pub updated_at: i64,
}

impl Store {
    /// Claims `key` for `owner` if nobody has: `true` when this call created the row.
    pub async fn claim_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        Ok(sqlx::query(
            "INSERT INTO idempotency_keys (connection, idempotency_key, fingerprint, state, \
             owner, lease_until, created_at, updated_at) \
             VALUES ($1, $2, $3, 'in_flight', $4, $5, $6, $6) \
             ON CONFLICT (connection, idempotency_key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(owner)
        .bind(now + millis(lease))
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// The row of `key`, if any.
    pub async fn key(&self, scope: &str, key: &str) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(
            "SELECT fingerprint, state, lease_until, status, body, created_at, updated_at \
             FROM idempotency_keys WHERE connection = $1 AND idempotency_key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let status: Option<i64> = row.try_get("status")?;
        let body: Option<String> = row.try_get("body")?;
        Ok(Some(KeyRow {
            fingerprint: row.try_get("fingerprint")?,
            state: KeyState::parse(&row.try_get::<String, _>("state")?),
            lease_until: row.try_get::<Option<i64>, _>("lease_until")?.unwrap_or(0),
            outcome: status
                .zip(body)
                .map(|(status, body)| (u16::try_from(status).unwrap_or(500), body)),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }))
    }

    /// Takes over `key` as last read (`seen`) for `owner`: `true` when this call did.
    pub async fn take_over_key(
        &self,
        scope: &str,
        key: &str,
        seen: &KeyRow,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        Ok(sqlx::query(
            "UPDATE idempotency_keys SET state = 'in_flight', owner = $1, lease_until = $2, \
             updated_at = $3 \
             WHERE connection = $4 AND idempotency_key = $5 AND updated_at = $6 AND state = $7",
        )
        .bind(owner)
        .bind(now + millis(lease))
        .bind(now.max(seen.updated_at + 1))
        .bind(scope)
        .bind(key)
        .bind(seen.updated_at)
        .bind(seen.state.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Extends `owner`'s lease on `key`.
    pub async fn renew_key(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET lease_until = $1 \
             WHERE connection = $2 AND idempotency_key = $3 AND owner = $4 AND state = 'in_flight'",
        )
        .bind(now_ms() + millis(lease))
        .bind(scope)
        .bind(key)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the outcome of `owner`'s run of `key`: `Done` or `Unknown`.
    pub async fn finish_key(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        state: KeyState,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE idempotency_keys SET state = $1, status = $2, body = $3, owner = NULL, \
             lease_until = NULL, updated_at = $4 \
             WHERE connection = $5 AND idempotency_key = $6 AND owner = $7",
        )
        .bind(state.as_str())
        .bind(i64::from(status))
        .bind(body)
        .bind(now)
        .bind(scope)
        .bind(key)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Frees `key` (nothing was written, so nothing to replay or resume).
    pub async fn release_key(&self, scope: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE connection = $1 AND idempotency_key = $2 AND owner = $3",
        )
        .bind(scope)
        .bind(key)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes `key` as last read, when it has expired.
    pub async fn expire_key(
        &self,
        scope: &str,
        key: &str,
        seen: &KeyRow,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE connection = $1 AND idempotency_key = $2 AND updated_at = $3",
        )
        .bind(scope)
        .bind(key)
        .bind(seen.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Adds a key as an earlier version's journal had it, unless the key exists.
    pub async fn import_key(&self, scope: &str, key: &str, row: &KeyRow) -> Result<(), StoreError> {
        let (status, body) = row.outcome.clone().unwrap_or((500, String::new()));
        sqlx::query(
            "INSERT INTO idempotency_keys (connection, idempotency_key, fingerprint, state, \
             status, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (connection, idempotency_key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(&row.fingerprint)
        .bind(row.state.as_str())
        .bind(i64::from(status))
        .bind(body)
        .bind(row.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

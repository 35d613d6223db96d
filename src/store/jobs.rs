//! The `webhook_jobs` table: every accepted webhook event is a row before Asana gets its 200,
//! claimed by a worker on any replica under a lease, and kept 24 h once handled so that a
//! redelivery (to this replica or another) is one insert that does nothing.

use std::time::Duration;

use sqlx::Row;

use super::{Engine, Store, StoreError, millis, now_ms};

/// A queued event a worker has claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// The event's identity.
    pub event_id: String,
    /// The hook it came through.
    pub hook_id: String,
    /// The event as JSON.
    pub event: String,
    /// Claims so far, this one included: above 1, an earlier worker died mid-job.
    pub attempts: i64,
}

impl Store {
    /// Queues `events` (identity, JSON) that came through `hook_id` in one transaction; an
    /// event already queued or handled is left as it is. Returns how many were new.
    pub async fn enqueue_jobs(
        &self,
        hook_id: &str,
        events: &[(String, String)],
    ) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut new = 0;
        for (event_id, event) in events {
            new += sqlx::query(
                "INSERT INTO webhook_jobs (event_id, hook_id, event, state, created_at, \
                 updated_at) VALUES ($1, $2, $3, 'queued', $4, $4) \
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(event_id)
            .bind(hook_id)
            .bind(event)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(usize::try_from(new).unwrap_or(usize::MAX))
    }

    /// Events queued and not yet handled.
    pub async fn queued_jobs(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM webhook_jobs WHERE state = 'queued'")
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?,
        )
    }

    /// Claims the oldest queued job nobody holds for `owner` until `lease` from now. A job
    /// whose lease ran out more than `grace` ago is free again: its owner died, and what it
    /// sent to Asana has arrived by then.
    pub async fn claim_job(
        &self,
        owner: &str,
        lease: Duration,
        grace: Duration,
    ) -> Result<Option<JobRow>, StoreError> {
        let now = now_ms();
        // PostgreSQL: rows another replica is claiming right now are skipped, not waited for.
        // SQLite runs one writer at a time, so its statement is atomic as it stands.
        let lock = match self.url.engine() {
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let sql = format!(
            "UPDATE webhook_jobs SET owner = $1, lease_until = $2, attempts = attempts + 1, \
             updated_at = $3 \
             WHERE state = 'queued' AND lease_until < $4 AND event_id = ( \
               SELECT event_id FROM webhook_jobs WHERE state = 'queued' AND lease_until < $4 \
               ORDER BY created_at LIMIT 1{lock}) \
             RETURNING event_id, hook_id, event, attempts"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + millis(lease))
            .bind(now)
            .bind(now - millis(grace))
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(JobRow {
            event_id: row.try_get("event_id")?,
            hook_id: row.try_get("hook_id")?,
            event: row
                .try_get::<Option<String>, _>("event")?
                .unwrap_or_default(),
            attempts: row.try_get("attempts")?,
        }))
    }

    /// Extends `owner`'s lease on a job it runs.
    pub async fn renew_job(
        &self,
        event_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_jobs SET lease_until = $1 \
             WHERE event_id = $2 AND owner = $3 AND state = 'queued'",
        )
        .bind(now_ms() + millis(lease))
        .bind(event_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a job `owner` ran as handled, dropping the event and keeping its identity.
    pub async fn finish_job(&self, event_id: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_jobs SET state = 'done', event = NULL, owner = NULL, \
             lease_until = 0, updated_at = $1 \
             WHERE event_id = $2 AND owner = $3",
        )
        .bind(now_ms())
        .bind(event_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records an event an earlier version handled at `at_ms`, so a redelivery does nothing.
    pub async fn import_done_job(&self, event_id: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_jobs (event_id, hook_id, state, created_at, updated_at) \
             VALUES ($1, '', 'done', $2, $2) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends every job lease now: for a server that is alone on its SQLite file, any lease
    /// left there is a dead predecessor's. Its jobs are taken over after the grace all the
    /// same, since what it sent to Asana may still be arriving.
    pub(super) async fn clear_job_leases(&self) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_jobs SET owner = NULL, lease_until = $1              WHERE state = 'queued' AND lease_until > $1",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

//! The `webhook_hooks` table: the webhooks this linker registered, announced before Asana's
//! handshake so any replica can answer it, and their secrets (sealed).

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// One hook as stored (its secret is read on its own, by [`Store::hook_secret`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hook {
    /// The watched resource.
    pub resource: Option<String>,
    /// The target URL.
    pub target: Option<String>,
    /// Asana's webhook gid, once created.
    pub webhook_gid: Option<String>,
    /// Whether the handshake happened.
    pub has_secret: bool,
}

impl Store {
    /// Records that hook `id` is about to be registered, expecting a handshake until
    /// `until_ms`.
    pub async fn announce_hook(
        &self,
        id: &str,
        resource: &str,
        target: &str,
        until_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_hooks (hook_id, resource, target, expect_handshake_until, \
             updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (hook_id) DO UPDATE SET resource = $2, target = $3, \
             expect_handshake_until = $4, updated_at = $5",
        )
        .bind(id)
        .bind(resource)
        .bind(target)
        .bind(until_ms)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores the handshake's secret if `id` expects one now: `true` when it did.
    pub async fn complete_handshake(&self, id: &str, secret: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        Ok(sqlx::query(
            "UPDATE webhook_hooks SET secret = $1, expect_handshake_until = NULL, \
             updated_at = $2 WHERE hook_id = $3 AND expect_handshake_until >= $2",
        )
        .bind(self.sealer.seal(secret)?)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// The secret of hook `id`, if its handshake happened.
    pub async fn hook_secret(&self, id: &str) -> Result<Option<SecretString>, StoreError> {
        let row = sqlx::query("SELECT secret FROM webhook_hooks WHERE hook_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let sealed: Option<String> = match row {
            Some(row) => row.try_get("secret")?,
            None => None,
        };
        Ok(sealed.map(|s| self.sealer.open(&s)).transpose()?)
    }

    /// Records whose connection registered hook `id`.
    pub async fn set_hook_owner(&self, id: &str, user_gid: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhook_hooks SET user_gid = $1 WHERE hook_id = $2")
            .bind(user_gid)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whose connection registered hook `id`, if recorded.
    pub async fn hook_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query("SELECT user_gid FROM webhook_hooks WHERE hook_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.try_get::<Option<String>, _>("user_gid"))
                .transpose()?
                .flatten(),
        )
    }

    /// Records Asana's webhook gid for hook `id`.
    pub async fn hook_registered(&self, id: &str, webhook_gid: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_hooks (hook_id, webhook_gid, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (hook_id) DO UPDATE SET webhook_gid = $2, updated_at = $3",
        )
        .bind(id)
        .bind(webhook_gid)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the hook with this webhook gid; whether one was found.
    pub async fn forget_hook(&self, webhook_gid: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("DELETE FROM webhook_hooks WHERE webhook_gid = $1")
                .bind(webhook_gid)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// Every hook, by id.
    pub async fn hooks(&self) -> Result<Vec<(String, Hook)>, StoreError> {
        let rows = sqlx::query(
            "SELECT hook_id, resource, target, webhook_gid, secret FROM webhook_hooks \
             ORDER BY hook_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("hook_id")?,
                    Hook {
                        resource: row.try_get("resource")?,
                        target: row.try_get("target")?,
                        webhook_gid: row.try_get("webhook_gid")?,
                        has_secret: row.try_get::<Option<String>, _>("secret")?.is_some(),
                    },
                ))
            })
            .collect()
    }

    /// Adds a hook as an earlier version's file had it, unless the id exists.
    pub async fn import_hook(
        &self,
        id: &str,
        hook: &Hook,
        secret: Option<&SecretString>,
    ) -> Result<(), StoreError> {
        let sealed = secret
            .map(|s| self.sealer.seal(s.expose_secret()))
            .transpose()?;
        sqlx::query(
            "INSERT INTO webhook_hooks (hook_id, resource, target, webhook_gid, secret, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hook_id) DO NOTHING",
        )
        .bind(id)
        .bind(hook.resource.as_deref())
        .bind(hook.target.as_deref())
        .bind(hook.webhook_gid.as_deref())
        .bind(sealed)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

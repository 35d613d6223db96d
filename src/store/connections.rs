//! The `connections` table: who consented, their tokens, and the refresh lease that lets one
//! refresh serve every replica.

use std::time::{Duration, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, millis, now_ms};
use crate::asana::{AsanaUser, StoredTokens};
use crate::domain::{FirstConnection, Workspace};

/// Selects the columns read into [`StoredTokens`] (a macro, so queries stay static strings).
macro_rules! select_tokens {
    ($rest:literal) => {
        concat!(
            "SELECT user_gid, name, email, access_token, refresh_token, expires_at, \
             refresh_until FROM connections ",
            $rest
        )
    };
}

/// What asking for the refresh lease found.
#[derive(Debug)]
pub enum Lease {
    /// This process holds the lease: it refreshes these tokens (re-read under the lease).
    Taken(StoredTokens),
    /// Another process holds it until this time (ms): wait for its new token.
    Held(i64),
    /// The tokens changed since they were read: here they are.
    Changed(StoredTokens),
    /// The connection is gone or revoked.
    Gone,
}

/// A connection as listed (no tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The Asana user's gid.
    pub user_gid: String,
    /// Their name.
    pub name: String,
    /// Their email, when Asana shares it.
    pub email: Option<String>,
    /// Where it stands.
    pub state: ConnectionState,
    /// Whether it acts when nobody is named.
    pub is_default: bool,
    /// When it was first made (ms).
    pub created_at: i64,
    /// When one of its keys was last used (ms), roughly.
    pub last_used_at: Option<i64>,
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Its access token is valid.
    Healthy,
    /// Its access token expired; the next use refreshes it.
    Expired,
    /// Disconnected, or Asana refused its refresh token.
    Revoked,
}

impl ConnectionState {
    /// Its name in listings and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// SHA-256 of a token, in hex: compared instead of the token, which is sealed differently
/// each time it is written.
fn token_hash(token: &SecretString) -> String {
    crate::util::digest::sha256_hex(token.expose_secret())
}

fn expires_ms(tokens: &StoredTokens) -> i64 {
    tokens
        .expires_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

impl Store {
    fn tokens(&self, row: &AnyRow) -> Result<Option<StoredTokens>, StoreError> {
        let Some(access) = row.try_get::<Option<String>, _>("access_token")? else {
            return Ok(None);
        };
        let refresh = row.try_get::<Option<String>, _>("refresh_token")?;
        let expires_ms: i64 = row.try_get("expires_at")?;
        Ok(Some(StoredTokens {
            access_token: self.sealer.open(&access)?,
            refresh_token: refresh.map(|r| self.sealer.open(&r)).transpose()?,
            expires_at: UNIX_EPOCH + Duration::from_millis(u64::try_from(expires_ms).unwrap_or(0)),
            user: AsanaUser {
                gid: row.try_get("user_gid")?,
                name: row.try_get("name")?,
                email: row.try_get("email")?,
            },
        }))
    }

    /// The refresh token sealed as the store keeps it.
    fn sealed_refresh(&self, tokens: &StoredTokens) -> Result<Option<String>, StoreError> {
        Ok(tokens
            .refresh_token
            .as_ref()
            .map(|t| self.sealer.seal(t.expose_secret()))
            .transpose()?)
    }

    /// Seals every stored secret with the current key: secrets sealed with the previous key
    /// (a rotation) or kept plain (a key set for the first time) are written again. Fails on
    /// the first secret that opens with neither key.
    pub async fn reseal(&self) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT user_gid, access_token, refresh_token FROM connections \
             WHERE access_token IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut resealed = 0;
        for row in rows {
            let user_gid: String = row.try_get("user_gid")?;
            let access: String = row.try_get("access_token")?;
            let refresh: Option<String> = row.try_get("refresh_token")?;
            let opened_access = self.sealer.open(&access)?;
            let opened_refresh = refresh
                .as_deref()
                .map(|r| self.sealer.open(r))
                .transpose()?;
            let current = self.sealer.is_current(&access)
                && refresh.as_deref().is_none_or(|r| self.sealer.is_current(r));
            if current {
                continue;
            }
            sqlx::query(
                "UPDATE connections SET access_token = $1, refresh_token = $2, \
                 access_token_hash = $3 WHERE user_gid = $4 AND access_token = $5",
            )
            .bind(self.sealer.seal(opened_access.expose_secret())?)
            .bind(
                opened_refresh
                    .map(|r| self.sealer.seal(r.expose_secret()))
                    .transpose()?,
            )
            .bind(token_hash(&opened_access))
            .bind(&user_gid)
            .bind(&access)
            .execute(&self.pool)
            .await?;
            resealed += 1;
        }
        resealed += self
            .reseal_column("webhook_hooks", "hook_id", "secret")
            .await?;
        resealed += self.reseal_column("secrets", "name", "value").await?;
        if resealed > 0 {
            tracing::info!(
                resealed,
                "sealed the store's secrets with the current STORE_KEY"
            );
        }
        Ok(resealed)
    }

    /// Seals again, with the current key, each `column` of `table` (rows keyed by `key`)
    /// that is not sealed with it; how many were written. `table`, `key` and `column` are
    /// names fixed in this file, never input.
    async fn reseal_column(
        &self,
        table: &str,
        key: &str,
        column: &str,
    ) -> Result<usize, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {key} AS k, {column} AS v FROM {table} WHERE {column} IS NOT NULL"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut resealed = 0;
        for row in rows {
            let id: String = row.try_get("k")?;
            let value: String = row.try_get("v")?;
            let opened = self.sealer.open(&value)?;
            if self.sealer.is_current(&value) {
                continue;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND {column} = $3"
            )))
            .bind(self.sealer.seal(opened.expose_secret())?)
            .bind(&id)
            .bind(&value)
            .execute(&self.pool)
            .await?;
            resealed += 1;
        }
        Ok(resealed)
    }

    /// The tokens of the connection that acts when nobody is named: the default one, else
    /// the oldest still connected.
    pub async fn default_connection(&self) -> Result<Option<StoredTokens>, StoreError> {
        let row = sqlx::query(select_tokens!(
            "WHERE status = 'connected' ORDER BY is_default DESC, created_at ASC, user_gid ASC \
             LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => self.tokens(&row)?,
            None => None,
        })
    }

    /// The tokens of `user_gid`'s connection, if it is connected.
    pub async fn connection(&self, user_gid: &str) -> Result<Option<StoredTokens>, StoreError> {
        let row = sqlx::query(select_tokens!(
            "WHERE user_gid = $1 AND status = 'connected'"
        ))
        .bind(user_gid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => self.tokens(&row)?,
            None => None,
        })
    }

    /// Stores a consent: creates or updates the connection of the user who consented, and
    /// nobody else's. Which connection is the default does not change: it is the one an
    /// operator marked, else the oldest connected one.
    pub async fn save_consent(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        let now = now_ms();
        let access = self.sealer.seal(tokens.access_token.expose_secret())?;
        let refresh = self.sealed_refresh(tokens)?;
        sqlx::query(
            "INSERT INTO connections (user_gid, name, email, status, access_token, refresh_token, \
             access_token_hash, expires_at, is_default, created_at, updated_at) \
             VALUES ($1, $2, $3, 'connected', $4, $5, $8, $6, 0, $7, $7) \
             ON CONFLICT (user_gid) DO UPDATE SET name = $2, email = $3, status = 'connected', \
             access_token = $4, refresh_token = $5, access_token_hash = $8, expires_at = $6, \
             refresh_owner = NULL, refresh_until = NULL, updated_at = $7",
        )
        .bind(&tokens.user.gid)
        .bind(&tokens.user.name)
        .bind(tokens.user.email.as_deref())
        .bind(access)
        .bind(refresh)
        .bind(expires_ms(tokens))
        .bind(now)
        .bind(token_hash(&tokens.access_token))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The gids of every connected user, the default one first (the one marked default,
    /// else the oldest), then oldest first.
    pub async fn connected_users(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query(
            "SELECT user_gid FROM connections WHERE status = 'connected' \
             ORDER BY is_default DESC, created_at ASC, user_gid ASC",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok(row.try_get("user_gid")?))
        .collect()
    }

    /// Marks `user_gid`'s connection as the default one; `false` if it is not connected.
    pub async fn set_default(&self, user_gid: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let marked = sqlx::query(
            "UPDATE connections SET is_default = 1 WHERE user_gid = $1 AND status = 'connected'",
        )
        .bind(user_gid)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if marked {
            sqlx::query("UPDATE connections SET is_default = 0 WHERE user_gid <> $1")
                .bind(user_gid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(marked)
    }

    /// The gid of the connection `who` names: a user gid or an email (any case).
    pub async fn find_user(&self, who: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query(
            "SELECT user_gid FROM connections WHERE user_gid = $1 OR LOWER(email) = LOWER($1) \
             ORDER BY created_at ASC LIMIT 1",
        )
        .bind(who)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.try_get("user_gid"))
        .transpose()?)
    }

    /// Every connection, oldest first, without its tokens.
    pub async fn list_connections(&self) -> Result<Vec<ConnectionInfo>, StoreError> {
        let default = self.connected_users().await?.into_iter().next();
        let rows = sqlx::query(
            "SELECT c.user_gid, c.name, c.email, c.status, c.expires_at, c.created_at, \
             (SELECT MAX(k.last_used_at) FROM api_keys k WHERE k.user_gid = c.user_gid) AS last_used \
             FROM connections c ORDER BY c.created_at ASC, c.user_gid ASC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let user_gid: String = row.try_get("user_gid")?;
                let status: String = row.try_get("status")?;
                let expires_at: i64 = row.try_get("expires_at")?;
                Ok(ConnectionInfo {
                    is_default: default.as_deref() == Some(user_gid.as_str()),
                    state: match status.as_str() {
                        "connected" if expires_at > now_ms() => ConnectionState::Healthy,
                        "connected" => ConnectionState::Expired,
                        _ => ConnectionState::Revoked,
                    },
                    user_gid,
                    name: row.try_get("name")?,
                    email: row.try_get("email")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used")?,
                })
            })
            .collect()
    }

    /// Asks for the right to refresh `user_gid`'s tokens for `lease`, if they still hold
    /// `seen` (the access token the caller found stale or refused). Short statements only:
    /// nothing is held open while Asana is called.
    pub async fn take_refresh_lease(
        &self,
        user_gid: &str,
        seen: &SecretString,
        owner: &str,
        lease: Duration,
    ) -> Result<Lease, StoreError> {
        let now = now_ms();
        let taken = sqlx::query(
            "UPDATE connections SET refresh_owner = $1, refresh_until = $2 \
             WHERE user_gid = $3 AND status = 'connected' AND access_token_hash = $4 \
             AND (refresh_until IS NULL OR refresh_until < $5)",
        )
        .bind(owner)
        .bind(now + millis(lease))
        .bind(user_gid)
        .bind(token_hash(seen))
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        let row = sqlx::query(select_tokens!(
            "WHERE user_gid = $1 AND status = 'connected'"
        ))
        .bind(user_gid)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Lease::Gone);
        };
        let Some(current) = self.tokens(&row)? else {
            return Ok(Lease::Gone);
        };
        Ok(if taken {
            Lease::Taken(current)
        } else if current.access_token.expose_secret() != seen.expose_secret() {
            Lease::Changed(current)
        } else {
            Lease::Held(
                row.try_get::<Option<i64>, _>("refresh_until")?
                    .unwrap_or(now),
            )
        })
    }

    /// Stores refreshed tokens and gives the lease back. Written before anyone uses them, so
    /// a refresh token Asana rotates is never lost.
    pub async fn save_refreshed(
        &self,
        tokens: &StoredTokens,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE connections SET access_token = $1, refresh_token = $2, expires_at = $3, \
             refresh_owner = NULL, refresh_until = NULL, updated_at = $4, access_token_hash = $7 \
             WHERE user_gid = $5 AND status = 'connected' \
             AND (refresh_owner = $6 OR refresh_owner IS NULL OR refresh_until < $4)",
        )
        .bind(self.sealer.seal(tokens.access_token.expose_secret())?)
        .bind(self.sealed_refresh(tokens)?)
        .bind(expires_ms(tokens))
        .bind(now_ms())
        .bind(&tokens.user.gid)
        .bind(owner)
        .bind(token_hash(&tokens.access_token))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives the lease back after a refresh that failed, so the next caller may try at once.
    pub async fn release_refresh_lease(
        &self,
        user_gid: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE connections SET refresh_owner = NULL, refresh_until = NULL \
             WHERE user_gid = $1 AND refresh_owner = $2",
        )
        .bind(user_gid)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives back every refresh lease: for a server starting on an SQLite store, the one
    /// process that could hold them is gone.
    pub(super) async fn clear_refresh_leases(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE connections SET refresh_owner = NULL, refresh_until = NULL")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks the connection revoked (Asana refused its refresh token) and drops its tokens.
    pub async fn revoke_connection(&self, user_gid: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE connections SET status = 'revoked', access_token = NULL, \
             refresh_token = NULL, access_token_hash = NULL, refresh_owner = NULL, \
             refresh_until = NULL, updated_at = $1 \
             WHERE user_gid = $2",
        )
        .bind(now_ms())
        .bind(user_gid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the workspaces `user_gid` belongs to (read at consent).
    pub async fn record_workspaces(
        &self,
        user_gid: &str,
        workspaces: &[Workspace],
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE connections SET workspaces = $1 WHERE user_gid = $2")
            .bind(serde_json::to_string(workspaces)?)
            .bind(user_gid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The workspaces recorded for `user_gid` (none when not recorded).
    pub async fn workspaces(&self, user_gid: &str) -> Result<Vec<Workspace>, StoreError> {
        let row = sqlx::query("SELECT workspaces FROM connections WHERE user_gid = $1")
            .bind(user_gid)
            .fetch_optional(&self.pool)
            .await?;
        let text: Option<String> = match row {
            Some(row) => row.try_get("workspaces")?,
            None => None,
        };
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    /// The first connection made (whatever it stands at now): its user and workspaces.
    pub async fn first_connection(&self) -> Result<Option<(String, FirstConnection)>, StoreError> {
        let row = sqlx::query(
            "SELECT user_gid, workspaces FROM connections ORDER BY created_at ASC, user_gid ASC \
             LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let workspaces: Option<String> = row.try_get("workspaces")?;
        let first = match workspaces.map(|w| serde_json::from_str::<Vec<Workspace>>(&w)) {
            Some(Ok(workspaces)) => FirstConnection::Known(workspaces),
            Some(Err(_)) | None => FirstConnection::Unknown,
        };
        Ok(Some((row.try_get("user_gid")?, first)))
    }

    /// Disconnects `user_gid`: its tokens are dropped, its keys revoked and it is no longer
    /// the default; the row stays, marked revoked, so a later consent keeps its place.
    pub async fn disconnect(&self, user_gid: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE connections SET status = 'revoked', access_token = NULL, \
             refresh_token = NULL, access_token_hash = NULL, refresh_owner = NULL, \
             refresh_until = NULL, is_default = 0, updated_at = $1 WHERE user_gid = $2",
        )
        .bind(now)
        .bind(user_gid)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE user_gid = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_gid)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM mcp_sessions WHERE user_gid = $1")
            .bind(user_gid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether any connection row exists (connected or not).
    pub async fn has_connections(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM connections LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }
}

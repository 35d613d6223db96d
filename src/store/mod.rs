//! The linker's state in one transactional store: an SQLite file by default (nothing to
//! install), PostgreSQL when `DATABASE_URL` names one, so that any number of replicas share
//! it. Migrations are embedded in the binary and applied at start.

mod api_keys;
mod connections;
mod consents;
mod hooks;
mod jobs;
mod keys;
mod mcp_sessions;
mod pauses;
mod posted;
mod seal;
mod sessions;
mod url;

#[cfg(test)]
pub(crate) mod tests;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};

pub use api_keys::KeyOwner;
pub use connections::{ConnectionInfo, ConnectionState, Lease};
pub use hooks::Hook;
pub use jobs::JobRow;
pub use keys::{KeyRow, KeyState};
pub use mcp_sessions::McpSessionRow;
pub use posted::PostedStory;
pub use seal::{InvalidStoreKey, SealError, Sealer, StoreKey};
pub use sessions::SessionRow;
pub use url::{DatabaseUrl, Engine, InvalidDatabaseUrl};

/// The schema, applied in order at start; additive only, so old and new replicas can share
/// one database during a rolling update.
static MIGRATOR: Migrator = sqlx::migrate!();

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be opened or reached.
    #[error("cannot open the store at {url}: {source}")]
    Open {
        /// `DATABASE_URL` without its password.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The SQLite file or its directory cannot be prepared.
    #[error("cannot prepare the store file {path}: {source}")]
    File {
        /// The file or directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot apply the store's migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// The engine cannot do this.
    #[error("{0}")]
    Unsupported(&'static str),
    /// Rows could not be encoded for a query.
    #[error("cannot encode rows for the store: {0}")]
    Encode(#[from] serde_json::Error),
    /// A secret cannot be sealed or opened (`STORE_KEY`).
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// The shared store: a pool of connections to one database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    url: DatabaseUrl,
    sealer: Sealer,
}

/// What `store check` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The engine.
    pub engine: Engine,
    /// The latest migration applied.
    pub schema_version: i64,
    /// Rows per table, in a fixed order.
    pub rows: Vec<(&'static str, i64)>,
}

/// The tables `store check` counts, with the query that counts each.
const TABLES: [(&str, &str); 12] = [
    ("connections", "SELECT COUNT(*) AS n FROM connections"),
    (
        "idempotency_keys",
        "SELECT COUNT(*) AS n FROM idempotency_keys",
    ),
    ("seen_events", "SELECT COUNT(*) AS n FROM seen_events"),
    ("oauth_consents", "SELECT COUNT(*) AS n FROM oauth_consents"),
    ("secrets", "SELECT COUNT(*) AS n FROM secrets"),
    ("rate_limits", "SELECT COUNT(*) AS n FROM rate_limits"),
    ("webhook_hooks", "SELECT COUNT(*) AS n FROM webhook_hooks"),
    ("posted_stories", "SELECT COUNT(*) AS n FROM posted_stories"),
    ("webhook_jobs", "SELECT COUNT(*) AS n FROM webhook_jobs"),
    ("api_keys", "SELECT COUNT(*) AS n FROM api_keys"),
    ("sessions", "SELECT COUNT(*) AS n FROM sessions"),
    ("mcp_sessions", "SELECT COUNT(*) AS n FROM mcp_sessions"),
];

/// How long a PostgreSQL connection may wait in the pool before it is tested again on its
/// way out (it was tested on its way in).
const TEST_IDLE_AFTER: Duration = Duration::from_secs(1);

/// How long the record of a posted comment is kept.
const POSTED_KEEP: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long an unused legacy MCP session is kept (clients then open a new one).
const MCP_SESSION_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

impl Store {
    /// Opens the store (creating an SQLite file, private to this user, if there is none),
    /// sealing secrets with `sealer`; the schema is not touched: see [`Store::migrate`].
    pub async fn open(url: &DatabaseUrl, sealer: Sealer) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.engine() == Engine::Sqlite;
        if let Some(path) = url.sqlite_path() {
            prepare_sqlite_file(path)?;
        }
        // The attach path reads the store only when its tokens change: a few connections do,
        // and idle ones are closed (each holds a page cache and prepared statements).
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 3 } else { 8 })
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(Duration::from_secs(10))
            // sqlx tests every connection as it goes back to the pool; testing it again on
            // every acquire costs a round trip per query (to SQLite's worker thread, or to
            // PostgreSQL's server). An SQLite connection is an open file, which cannot go
            // stale; a PostgreSQL one can (a restarted server), so one that has waited in the
            // pool for a while is tested before use, and a broken one replaced.
            .test_before_acquire(false)
            .before_acquire(move |connection, waited| {
                Box::pin(async move {
                    if sqlite || waited.idle_for < TEST_IDLE_AFTER {
                        return Ok(true);
                    }
                    Ok(sqlx::Connection::ping(connection).await.is_ok())
                })
            })
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL: readers never wait for the writer; a writer waits for another
                        // instead of failing at once; NORMAL sync is durable across a crash
                        // of the process (not of the machine's power) in WAL mode.
                        connection.execute("PRAGMA journal_mode = WAL").await?;
                        connection.execute("PRAGMA busy_timeout = 10000").await?;
                        connection.execute("PRAGMA synchronous = NORMAL").await?;
                        // 512 KiB of page cache: the store is small; memory is not.
                        connection.execute("PRAGMA cache_size = -512").await?;
                    }
                    Ok(())
                })
            })
            .connect(url.expose())
            .await
            .map_err(|source| StoreError::Open {
                url: url.to_string(),
                source,
            })?;
        Ok(Self {
            pool,
            url: url.clone(),
            sealer,
        })
    }

    /// Opens the store, applies any migration not applied yet, and seals every secret with
    /// the current key (after a rotation, or when a key is first set): a secret that opens
    /// with neither key stops here, before anything acts on it.
    pub async fn open_and_migrate(url: &DatabaseUrl, sealer: Sealer) -> Result<Self, StoreError> {
        let store = Self::open(url, sealer).await?;
        store.migrate().await?;
        store.reseal().await?;
        Ok(store)
    }

    /// Applies the migrations not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Where the store is, without its password.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Whether the store answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Schema version and row counts.
    pub async fn report(&self) -> Result<Report, StoreError> {
        let schema_version = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS version FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get::<i64, _>("version")?;
        let mut rows = Vec::new();
        for (table, count) in TABLES {
            let count: i64 = sqlx::query(count)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
            rows.push((table, count));
        }
        Ok(Report {
            engine: self.url.engine(),
            schema_version,
            rows,
        })
    }

    /// Writes a consistent copy of an SQLite store to `to` (a new file, private to this user)
    /// while it runs; PostgreSQL has its own tools (`pg_dump`).
    pub async fn backup(&self, to: &Path) -> Result<(), StoreError> {
        if self.url.engine() != Engine::Sqlite {
            return Err(StoreError::Unsupported(
                "store backup copies an SQLite store; back up PostgreSQL with pg_dump",
            ));
        }
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(to)
                .map_err(|source| StoreError::File {
                    path: to.display().to_string(),
                    source,
                })?;
        }
        sqlx::query("VACUUM INTO $1")
            .bind(to.display().to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes what has outlived its use: keys and seen events older than `keep`, records of
    /// posted comments older than 30 days.
    pub async fn prune(&self, keep: Duration) -> Result<u64, StoreError> {
        let cutoff = now_ms() - millis(keep);
        let keys = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let seen = sqlx::query("DELETE FROM seen_events WHERE seen_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?
            .rows_affected();
        // Queued jobs stay until handled: only what is done is forgotten.
        let jobs = sqlx::query("DELETE FROM webhook_jobs WHERE state = 'done' AND created_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let posted = sqlx::query("DELETE FROM posted_stories WHERE posted_at < $1")
            .bind(now_ms() - millis(POSTED_KEEP))
            .execute(&self.pool)
            .await?
            .rows_affected();
        let mcp_sessions = sqlx::query("DELETE FROM mcp_sessions WHERE seen_at < $1")
            .bind(now_ms() - millis(MCP_SESSION_KEEP))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(keys + seen + jobs + posted + sessions + mcp_sessions)
    }

    /// Frees every lease (token refreshes, webhook jobs): for a server starting on an SQLite
    /// store, the one process that could hold them is gone.
    pub async fn clear_leases(&self) -> Result<(), StoreError> {
        self.clear_refresh_leases().await?;
        self.clear_job_leases().await
    }

    /// Records `key` as seen; `true` if it was not yet.
    pub async fn mark_seen(&self, key: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "INSERT INTO seen_events (event_key, seen_at) VALUES ($1, $2) \
             ON CONFLICT (event_key) DO NOTHING",
        )
        .bind(key)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Whether `key` was seen (and not pruned yet).
    pub async fn is_seen(&self, key: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM seen_events WHERE event_key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }
}

/// Creates the directory (owner only) and the file (owner only) before SQLite opens it, so
/// the tokens in it are never readable by anyone else, even for a moment.
fn prepare_sqlite_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let error = |path: &Path| {
        let shown = path.display().to_string();
        move |source| StoreError::File {
            path: shown,
            source,
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(error(dir))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(error(path))?;
    Ok(())
}

/// Milliseconds since the Unix epoch: how the store keeps time.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// A duration in milliseconds, saturating.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Prunes the store at start and then every hour until `stop` turns true, so it does not
/// grow with traffic.
pub fn spawn_pruner(
    store: Store,
    keep: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            let stopping = tokio::select! {
                _ = every.tick() => false,
                _ = stop.wait_for(|stopping| *stopping) => true,
            };
            if stopping {
                break;
            }
            match store.prune(keep).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "pruned expired keys and events from the store"),
                Err(error) => {
                    tracing::warn!(error = %crate::util::cause_chain(&error), "cannot prune the store")
                }
            }
        }
    })
}

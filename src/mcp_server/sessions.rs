//! Legacy MCP sessions in the store, so a session opened on one replica goes on on any other
//! (rmcp replays its `initialize` there), and each session bound to the key that opened it:
//! presented with another key, it does not exist.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};

use secrecy::{ExposeSecret, SecretString};

use crate::store::{Store, StoreError};
use crate::util::digest::sha256_hex;

/// How often a session's last use is written at most.
const TOUCH: Duration = Duration::from_secs(3600);
/// Sessions remembered at most; past it the memory is cleared (it is only a cache).
const MAX_CACHED: usize = 10_000;

/// Who opens or uses a session: the key presented (none from loopback without a key), and
/// for a personal key, its person.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The key presented.
    pub bearer: Option<SecretString>,
    /// The person a personal key belongs to.
    pub user_gid: Option<String>,
}

impl Owner {
    /// What the store keeps of the key: its SHA-256, or `loopback`. Worked out only for
    /// requests that open or use a session.
    fn key(&self) -> String {
        self.bearer.as_ref().map_or_else(
            || "loopback".to_owned(),
            |key| sha256_hex(key.expose_secret()),
        )
    }
}

tokio::task_local! {
    /// The owner of the request being handled, for [`StoreSessions::store`], which rmcp
    /// calls while answering an `initialize`.
    pub static OWNER: Owner;
}

#[derive(Debug, Clone)]
struct Known {
    owner: String,
    touched: Instant,
}

/// rmcp's session store, over the linker's store.
#[derive(Debug)]
pub struct StoreSessions {
    store: Store,
    known: RwLock<HashMap<String, Known>>,
}

/// Whether a caller may use a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    /// Its own session, or one nobody has (rmcp answers that it does not exist).
    Allowed,
    /// Another key's session.
    Refused,
}

impl StoreSessions {
    /// Sessions kept in `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            known: RwLock::new(HashMap::new()),
        }
    }

    /// Whether `owner` may use session `id`; notes the use now and then.
    pub async fn access(&self, id: &str, owner: &Owner) -> Result<Access, StoreError> {
        let cached = self.read().get(id).cloned();
        let known = match cached {
            Some(known) => {
                if known.touched.elapsed() >= TOUCH {
                    self.store.touch_mcp_session(id).await?;
                    self.remember(id, &known.owner);
                }
                known
            }
            None => match self.store.mcp_session(id).await? {
                Some(row) => {
                    self.remember(id, &row.owner);
                    Known {
                        owner: row.owner,
                        touched: Instant::now(),
                    }
                }
                None => return Ok(Access::Allowed),
            },
        };
        Ok(if known.owner == owner.key() {
            Access::Allowed
        } else {
            Access::Refused
        })
    }

    fn remember(&self, id: &str, owner: &str) {
        let mut known = self.write();
        if known.len() >= MAX_CACHED {
            known.clear();
        }
        known.insert(
            id.to_owned(),
            Known {
                owner: owner.to_owned(),
                touched: Instant::now(),
            },
        );
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Known>> {
        // Writers only insert or remove whole entries, so a poisoned lock is still consistent.
        self.known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Known>> {
        self.known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl SessionStore for StoreSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let Some(row) = self.store.mcp_session(session_id).await? else {
            return Ok(None);
        };
        let params = serde_json::from_str(&row.state)?;
        Ok(Some(SessionState::new(params)))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let owner = OWNER
            .try_with(Clone::clone)
            .map_err(|_| "a session was opened outside a request of the /mcp guard")?;
        let json = serde_json::to_string(&state.initialize_params)?;
        let key = owner.key();
        self.store
            .put_mcp_session(session_id, &key, owner.user_gid.as_deref(), &json)
            .await?;
        self.remember(session_id, &key);
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.store.delete_mcp_session(session_id).await?;
        self.write().remove(session_id);
        Ok(())
    }
}

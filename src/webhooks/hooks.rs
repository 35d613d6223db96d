//! The webhooks this linker registered: hook id → secret, in a JSON file beside the token
//! file (mode 0600, replaced atomically). The CLI announces a hook before registering it;
//! the receiver accepts a handshake only for an announced hook, so nobody else can plant a
//! secret and send "signed" events.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::domain::InvalidInput;

/// How long an announced hook waits for its handshake.
const HANDSHAKE_WINDOW_SECS: u64 = 600;

/// A hook id in the target path: 1–64 characters from `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookId(String);

impl HookId {
    /// Accepts 1–64 characters from `A-Z a-z 0-9 _ -`.
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let valid = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidInput(
                "the hook id must be 1 to 64 letters, digits, _ or -".to_owned(),
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One hook as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HookRecord {
    /// The handshake's secret, once received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// Until when (Unix seconds) a handshake is expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expect_handshake_until: Option<u64>,
    /// Asana's webhook gid, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_gid: Option<String>,
    /// The watched resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The target URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct HookFile {
    #[serde(default)]
    hooks: BTreeMap<String, HookRecord>,
}

/// The hook file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HookStoreError {
    /// I/O failed.
    #[error("webhook file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a hook file.
    #[error("webhook file {path} is not valid: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Why a handshake was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeRefused {
    /// Not announced by `webhooks register`, or announced too long ago.
    #[error(
        "hook {0} is not expecting a handshake; register it with `mcp-asana-linker webhooks register`"
    )]
    NotExpected(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] HookStoreError),
}

/// The hook file.
#[derive(Debug)]
pub struct HookStore {
    path: PathBuf,
    /// Serialises this process's read-modify-write cycles.
    writing: Mutex<()>,
    /// Whether any hook has a secret: only then must the linker's comments be remembered.
    in_use: AtomicBool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl HookStore {
    /// A store at `path`; reads it once to know whether webhooks are in use.
    pub fn new(path: PathBuf) -> Self {
        let in_use = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<HookFile>(&bytes).ok())
            .is_some_and(|file| file.hooks.values().any(|h| h.secret.is_some()));
        Self {
            path,
            writing: Mutex::new(()),
            in_use: AtomicBool::new(in_use),
        }
    }

    /// Whether a webhook has completed its handshake with this service.
    pub fn in_use(&self) -> bool {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Records that `id` is about to be registered for `resource` at `target`.
    pub async fn announce(
        &self,
        id: &HookId,
        resource: &str,
        target: &str,
    ) -> Result<(), HookStoreError> {
        let _writing = self.writing.lock().await;
        let mut file = self.read().await?;
        let record = file.hooks.entry(id.0.clone()).or_default();
        record.expect_handshake_until = Some(now() + HANDSHAKE_WINDOW_SECS);
        record.resource = Some(resource.to_owned());
        record.target = Some(target.to_owned());
        self.write(&file).await
    }

    /// Stores the handshake's secret, if `id` is expecting one.
    pub async fn handshake(&self, id: &HookId, secret: &str) -> Result<(), HandshakeRefused> {
        let _writing = self.writing.lock().await;
        let mut file = self.read().await?;
        let record = file
            .hooks
            .get_mut(&id.0)
            .filter(|r| r.expect_handshake_until.is_some_and(|until| until >= now()))
            .ok_or_else(|| HandshakeRefused::NotExpected(id.0.clone()))?;
        record.secret = Some(secret.to_owned());
        record.expect_handshake_until = None;
        self.write(&file).await?;
        self.in_use.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The secret of `id`, if its handshake happened.
    pub async fn secret(&self, id: &HookId) -> Result<Option<SecretString>, HookStoreError> {
        Ok(self
            .read()
            .await?
            .hooks
            .get(&id.0)
            .and_then(|r| r.secret.clone())
            .map(SecretString::from))
    }

    /// Records Asana's webhook gid for `id`.
    pub async fn registered(&self, id: &HookId, webhook_gid: &str) -> Result<(), HookStoreError> {
        let _writing = self.writing.lock().await;
        let mut file = self.read().await?;
        file.hooks.entry(id.0.clone()).or_default().webhook_gid = Some(webhook_gid.to_owned());
        self.write(&file).await
    }

    /// Forgets the hook with this webhook gid; whether one was found.
    pub async fn forget(&self, webhook_gid: &str) -> Result<bool, HookStoreError> {
        let _writing = self.writing.lock().await;
        let mut file = self.read().await?;
        let before = file.hooks.len();
        file.hooks
            .retain(|_, r| r.webhook_gid.as_deref() != Some(webhook_gid));
        let found = file.hooks.len() != before;
        if found {
            self.write(&file).await?;
        }
        Ok(found)
    }

    /// Every hook, by id.
    pub async fn list(&self) -> Result<Vec<(String, HookRecord)>, HookStoreError> {
        Ok(self.read().await?.hooks.into_iter().collect())
    }

    async fn read(&self) -> Result<HookFile, HookStoreError> {
        let path = self.path.clone();
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HookFile::default()),
            Err(source) => return Err(HookStoreError::Io { path, source }),
        };
        serde_json::from_slice(&bytes).map_err(|source| HookStoreError::Corrupt { path, source })
    }

    async fn write(&self, file: &HookFile) -> Result<(), HookStoreError> {
        let path = self.path.clone();
        let bytes = serde_json::to_vec_pretty(file).unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            crate::util::atomic_file::write(&path, &bytes)
                .map_err(|source| HookStoreError::Io { path, source })
        })
        .await
        .unwrap_or_else(|e| {
            Err(HookStoreError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: &str) -> HookId {
        HookId::parse(value).expect("valid id")
    }

    #[tokio::test]
    async fn only_an_announced_hook_accepts_one_handshake() {
        let dir = tempfile::tempdir().expect("dir");
        let store = HookStore::new(dir.path().join("webhooks.json"));

        assert!(matches!(
            store.handshake(&id("h1"), "s").await,
            Err(HandshakeRefused::NotExpected(_))
        ));
        store
            .announce(&id("h1"), "123", "https://x/asana/webhooks/h1")
            .await
            .expect("announce");
        store.handshake(&id("h1"), "s").await.expect("announced");
        assert!(
            store.handshake(&id("h1"), "forged").await.is_err(),
            "second handshake refused"
        );
        let secret = store
            .secret(&id("h1"))
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(secrecy::ExposeSecret::expose_secret(&secret), "s");

        store
            .announce(&id("h1"), "123", "https://x/asana/webhooks/h1")
            .await
            .expect("re-register");
        store
            .handshake(&id("h1"), "s2")
            .await
            .expect("re-registration accepted");
    }

    #[test]
    fn hook_ids_are_path_safe() {
        for bad in ["", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(HookId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(HookId::parse("Ab_9-z").is_ok());
    }
}

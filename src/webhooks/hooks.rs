//! The webhooks this linker registered: hook id → secret, in the store (sealed), so any
//! replica can answer Asana's handshake and check a delivery's signature. The CLI announces a
//! hook before registering it; a handshake is accepted only for an announced hook, so nobody
//! else can plant a secret and send "signed" events.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::InvalidInput;
use crate::store::{Hook, Store, StoreError, millis, now_ms};

/// How long an announced hook waits for its handshake.
const HANDSHAKE_WINDOW: Duration = Duration::from_secs(600);

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

/// A hook as the earlier version's `webhooks.json` kept it.
#[derive(Deserialize)]
struct FileHook {
    secret: Option<String>,
    webhook_gid: Option<String>,
    resource: Option<String>,
    target: Option<String>,
}

#[derive(Deserialize)]
struct HookFile {
    #[serde(default)]
    hooks: BTreeMap<String, FileHook>,
}

/// The store cannot be used for hooks.
pub type HookStoreError = StoreError;

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
    Store(#[from] StoreError),
}

/// The registered hooks.
#[derive(Debug)]
pub struct HookStore {
    store: Store,
    /// Whether any hook has a secret: only then must the linker's comments be remembered.
    /// Read from the store at start and by [`HookStore::refresh`], set by a handshake here.
    in_use: AtomicBool,
}

impl HookStore {
    /// The hooks in `store`, after importing an earlier version's hook file at `legacy` (then
    /// removed).
    pub async fn load(store: Store, legacy: &Path) -> Result<Self, StoreError> {
        import_file(&store, legacy).await?;
        let hooks = Self {
            store,
            in_use: AtomicBool::new(false),
        };
        hooks.refresh().await?;
        Ok(hooks)
    }

    /// Reads again whether any hook has completed its handshake (maybe on another replica).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let in_use = self.store.hooks().await?.iter().any(|(_, h)| h.has_secret);
        self.in_use.store(in_use, Ordering::Relaxed);
        Ok(())
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
    ) -> Result<(), StoreError> {
        let until = now_ms() + millis(HANDSHAKE_WINDOW);
        self.store
            .announce_hook(&id.0, resource, target, until)
            .await
    }

    /// Stores the handshake's secret, if `id` is expecting one.
    pub async fn handshake(&self, id: &HookId, secret: &str) -> Result<(), HandshakeRefused> {
        if !self.store.complete_handshake(&id.0, secret).await? {
            return Err(HandshakeRefused::NotExpected(id.0.clone()));
        }
        self.in_use.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The secret of `id`, if its handshake happened.
    pub async fn secret(&self, id: &HookId) -> Result<Option<SecretString>, StoreError> {
        self.store.hook_secret(&id.0).await
    }

    /// Records Asana's webhook gid for `id`.
    pub async fn registered(&self, id: &HookId, webhook_gid: &str) -> Result<(), StoreError> {
        self.store.hook_registered(&id.0, webhook_gid).await
    }

    /// Forgets the hook with this webhook gid; whether one was found.
    pub async fn forget(&self, webhook_gid: &str) -> Result<bool, StoreError> {
        self.store.forget_hook(webhook_gid).await
    }

    /// Every hook, by id.
    pub async fn list(&self) -> Result<Vec<(String, Hook)>, StoreError> {
        self.store.hooks().await
    }
}

/// Moves an earlier version's `webhooks.json` into the store, then removes it.
async fn import_file(store: &Store, path: &Path) -> Result<(), StoreError> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "cannot read the hook file of an earlier version; not imported");
            return Ok(());
        }
    };
    let file: HookFile = match serde_json::from_slice(&bytes) {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "the hook file of an earlier version is not valid; not imported");
            return Ok(());
        }
    };
    for (id, hook) in &file.hooks {
        let secret = hook.secret.clone().map(SecretString::from);
        let stored = Hook {
            resource: hook.resource.clone(),
            target: hook.target.clone(),
            webhook_gid: hook.webhook_gid.clone(),
            has_secret: secret.is_some(),
        };
        store.import_hook(id, &stored, secret.as_ref()).await?;
    }
    tracing::info!(path = %path.display(), hooks = file.hooks.len(), "imported the hook file of an earlier version into the store");
    if let Err(error) = tokio::fs::remove_file(path).await {
        tracing::warn!(path = %path.display(), %error, "cannot remove the imported hook file");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: &str) -> HookId {
        HookId::parse(value).expect("valid id")
    }

    #[tokio::test]
    async fn only_an_announced_hook_accepts_one_handshake() {
        for (store, _dir) in crate::store::tests::engines().await {
            let dir = tempfile::tempdir().expect("dir");
            let hooks = HookStore::load(store, &dir.path().join("webhooks.json"))
                .await
                .expect("hooks");

            assert!(matches!(
                hooks.handshake(&id("h1"), "s").await,
                Err(HandshakeRefused::NotExpected(_))
            ));
            hooks
                .announce(&id("h1"), "123", "https://x/asana/webhooks/h1")
                .await
                .expect("announce");
            hooks.handshake(&id("h1"), "s").await.expect("announced");
            assert!(hooks.in_use());
            assert!(
                hooks.handshake(&id("h1"), "forged").await.is_err(),
                "second handshake refused"
            );
            let secret = hooks
                .secret(&id("h1"))
                .await
                .expect("read")
                .expect("stored");
            assert_eq!(secrecy::ExposeSecret::expose_secret(&secret), "s");

            hooks
                .announce(&id("h1"), "123", "https://x/asana/webhooks/h1")
                .await
                .expect("re-register");
            hooks
                .handshake(&id("h1"), "s2")
                .await
                .expect("re-registration accepted");
        }
    }

    #[tokio::test]
    async fn an_earlier_versions_hook_file_is_imported_and_removed() {
        let (store, _dir) = crate::store::tests::engines().await.remove(0);
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("webhooks.json");
        std::fs::write(
            &file,
            r#"{"hooks":{"h1":{"secret":"s","webhook_gid":"77","resource":"123"}}}"#,
        )
        .expect("write");

        let hooks = HookStore::load(store, &file).await.expect("hooks");

        assert!(!file.exists());
        assert!(hooks.in_use());
        let secret = hooks.secret(&id("h1")).await.expect("read").expect("kept");
        assert_eq!(secrecy::ExposeSecret::expose_secret(&secret), "s");
        assert!(hooks.forget("77").await.expect("forget"));
    }

    #[test]
    fn hook_ids_are_path_safe() {
        for bad in ["", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(HookId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(HookId::parse("Ab_9-z").is_ok());
    }
}

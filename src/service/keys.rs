//! Personal API keys: `mal_` and 40 random hex digits, shown once, kept only as a SHA-256
//! hash. A key acts as its connection. Checking one costs a hash and a map lookup; what the
//! store says of it is re-read every few seconds, so a key revoked through any replica stops
//! working everywhere within that time. Its last use is written at most once a minute.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::store::{Store, StoreError};

/// What every personal key starts with, so it is recognisable (in a paste, by a scanner).
pub const PREFIX: &str = "mal_";
/// Random bytes in a key.
const KEY_BYTES: usize = 20;
/// How long what the store said of a key is trusted.
const RECHECK: Duration = Duration::from_secs(5);
/// How often a key's last use is written at most.
const TOUCH: Duration = Duration::from_secs(60);
/// Keys remembered at most; past it the memory is cleared (random keys sent by a flood must
/// not grow it without bound).
const MAX_CACHED: usize = 10_000;

/// What is remembered of one presented key.
#[derive(Debug, Clone)]
struct Checked {
    /// The hash, compared again in constant time on every use.
    hash: String,
    /// The connection it acts as, if it works.
    owner: Option<String>,
    checked: Instant,
    touched: Option<Instant>,
}

/// Issues and checks personal keys.
#[derive(Debug)]
pub struct PersonalKeys {
    store: Store,
    checked: RwLock<HashMap<String, Checked>>,
}

/// A new key, to show once.
#[derive(Debug)]
pub struct IssuedKey {
    /// The key itself.
    pub key: SecretString,
    /// Its first characters, to tell it apart later.
    pub prefix: String,
}

fn hash(key: &str) -> String {
    crate::util::digest::sha256_hex(key.as_bytes())
}

impl PersonalKeys {
    /// Keys kept in `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            checked: RwLock::new(HashMap::new()),
        }
    }

    /// Whether `presented` has the form of a personal key (rather than the operator key).
    pub fn is_personal(presented: &str) -> bool {
        presented.starts_with(PREFIX)
    }

    /// A new key acting as `user_gid`'s connection; only its hash is stored.
    pub async fn issue(&self, user_gid: &str) -> Result<IssuedKey, StoreError> {
        let key = format!("{PREFIX}{}", crate::util::random::secret_hex(KEY_BYTES));
        let prefix = key[..PREFIX.len() + 6].to_owned();
        self.store
            .add_api_key(&hash(&key), &prefix, user_gid)
            .await?;
        Ok(IssuedKey {
            key: SecretString::from(key),
            prefix,
        })
    }

    /// Revokes every key of `user_gid` (a new key replaces them).
    pub async fn revoke_all(&self, user_gid: &str) -> Result<u64, StoreError> {
        let revoked = self.store.revoke_api_keys(user_gid).await?;
        self.forget(user_gid);
        Ok(revoked)
    }

    /// Drops what this process remembers of `user_gid`'s keys, revoked elsewhere (with a
    /// disconnect), so they stop working here at once.
    pub fn forget(&self, user_gid: &str) {
        self.write()
            .retain(|_, checked| checked.owner.as_deref() != Some(user_gid));
    }

    /// The connection `presented` acts as, or `None` if it is no key, or no longer works.
    pub async fn owner(&self, presented: &SecretString) -> Result<Option<String>, StoreError> {
        let hash = hash(presented.expose_secret());
        let now = Instant::now();
        let cached = self.read().get(&hash).cloned();
        if let Some(checked) = &cached
            && now.duration_since(checked.checked) < RECHECK
            && bool::from(checked.hash.as_bytes().ct_eq(hash.as_bytes()))
        {
            return Ok(checked.owner.clone());
        }
        let owner = self
            .store
            .api_key_owner(&hash)
            .await?
            .filter(|owner| owner.active)
            .map(|owner| owner.user_gid);
        let mut touched = cached.and_then(|c| c.touched);
        if owner.is_some() && touched.is_none_or(|at| now.duration_since(at) >= TOUCH) {
            self.store.touch_api_key(&hash).await?;
            touched = Some(now);
        }
        let mut checked = self.write();
        if checked.len() >= MAX_CACHED {
            checked.clear();
        }
        checked.insert(
            hash.clone(),
            Checked {
                hash,
                owner: owner.clone(),
                checked: now,
                touched,
            },
        );
        Ok(owner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Checked>> {
        // Writers only insert or remove whole entries, so a poisoned lock is still consistent.
        self.checked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Checked>> {
        self.checked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::engines;

    #[tokio::test]
    async fn a_key_acts_as_its_owner_until_revoked_and_only_its_hash_is_stored() {
        for (store, _dir) in engines().await {
            let engine = store.url().engine();
            let keys = PersonalKeys::new(store.clone());
            crate::store::tests::connect(&store, "42").await;
            let issued = keys.issue("42").await.expect("issue");
            let key = issued.key.expose_secret().to_owned();
            assert!(key.starts_with("mal_") && key.len() == 44, "{key}");
            assert!(key.starts_with(&issued.prefix));

            assert_eq!(
                keys.owner(&issued.key).await.expect("check").as_deref(),
                Some("42"),
                "{engine}"
            );
            let forged = SecretString::from(format!("{key}0"));
            assert_eq!(keys.owner(&forged).await.expect("check"), None);
            assert!(
                store.api_key_owner(&key).await.expect("read").is_none(),
                "{engine}: the key itself is not what is stored"
            );

            assert_eq!(keys.revoke_all("42").await.expect("revoke"), 1);
            assert_eq!(keys.owner(&issued.key).await.expect("check"), None);
        }
    }
}

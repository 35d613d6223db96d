//! Consents in progress travel in the browser that started them: the `state` handed out, its
//! PKCE verifier and an expiry (ten minutes), sealed with XChaCha20-Poly1305 under a key every
//! replica shares, in an HttpOnly cookie. Nothing is kept on the server until the callback,
//! so no flood of `/authorize` requests can fill a table or push out anyone's consent; the
//! callback records the state as used, so a consent finishes once.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use oauth2::PkceCodeVerifier;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::store::{Store, StoreError, now_ms};

/// How long a consent may take.
pub const CONSENT_TTL: Duration = Duration::from_secs(600);
/// Bytes of an XChaCha20 nonce.
const NONCE_LEN: usize = 24;
/// Binds sealed values to this use of the key.
const PURPOSE: &[u8] = b"mcp-asana-linker consent cookie v1";

/// What the cookie carries.
#[derive(Serialize, Deserialize)]
struct Carried {
    /// The state handed out.
    s: String,
    /// Its PKCE verifier.
    v: String,
    /// When the consent expires (ms since the Unix epoch).
    e: i64,
}

/// Seals consents into cookies and opens them at the callback.
pub struct PendingConsents {
    store: Store,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for PendingConsents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingConsents { .. }")
    }
}

impl PendingConsents {
    /// Consents sealed with the store's cookie key (made at the first start).
    pub async fn load(store: Store) -> Result<Self, StoreError> {
        let key = store.cookie_key().await?;
        Ok(Self {
            store,
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// The cookie value that carries a consent begun now.
    pub fn begin(&self, state: &str, verifier: &PkceCodeVerifier) -> String {
        let carried = Carried {
            s: state.to_owned(),
            v: verifier.secret().clone(),
            e: now_ms() + i64::try_from(CONSENT_TTL.as_millis()).unwrap_or(i64::MAX),
        };
        let plain = serde_json::to_vec(&carried).unwrap_or_default();
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: &plain,
            aad: PURPOSE,
        };
        // Sealing cannot fail for a message this small; an empty cookie would only fail the
        // callback, never accept a forged one.
        let sealed = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The verifier of the consent `cookie` carries, if that consent handed out `sent_state`,
    /// has not expired and was not finished before; it cannot finish again either way.
    pub async fn finish(
        &self,
        cookie: &str,
        sent_state: &str,
    ) -> Result<Option<PkceCodeVerifier>, StoreError> {
        let Some(carried) = self.open(cookie) else {
            return Ok(None);
        };
        let same = bool::from(carried.s.as_bytes().ct_eq(sent_state.as_bytes()));
        if !same || carried.e < now_ms() {
            return Ok(None);
        }
        if !self.store.spend_consent(&carried.s, CONSENT_TTL).await? {
            return Ok(None);
        }
        Ok(Some(PkceCodeVerifier::new(carried.v)))
    }

    fn open(&self, cookie: &str) -> Option<Carried> {
        let bytes = URL_SAFE_NO_PAD.decode(cookie).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: PURPOSE,
        };
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::engines;

    #[tokio::test]
    async fn a_consent_cookie_opens_once_for_its_own_state_and_cannot_be_forged() {
        for (store, _dir) in engines().await {
            let engine = store.url().engine();
            let consents = PendingConsents::load(store.clone()).await.expect("load");
            let verifier = PkceCodeVerifier::new("v".repeat(43));
            let cookie = consents.begin("state-1", &verifier);
            assert!(!cookie.contains("state-1"), "sealed: {cookie}");

            let mut tampered = cookie.clone().into_bytes();
            let last = tampered.len() - 2;
            tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).expect("ASCII");
            assert!(
                consents
                    .finish(&tampered, "state-1")
                    .await
                    .expect("open")
                    .is_none()
            );
            assert!(
                consents
                    .finish(&cookie, "state-2")
                    .await
                    .expect("open")
                    .is_none()
            );
            let other = PendingConsents::load(store.clone())
                .await
                .expect("another replica");
            let opened = other.finish(&cookie, "state-1").await.expect("open");
            assert_eq!(
                opened.map(|v| v.secret().clone()),
                Some("v".repeat(43)),
                "{engine}: any replica opens it"
            );
            assert!(
                consents
                    .finish(&cookie, "state-1")
                    .await
                    .expect("open")
                    .is_none(),
                "{engine}: once"
            );
        }
    }
}

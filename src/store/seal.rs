//! Secrets at rest: with `STORE_KEY` set, every secret the store keeps is sealed with
//! XChaCha20-Poly1305 under that key, so a dump of the database alone hands out nothing.
//! Each sealed value names the key it was sealed with, so a key can be rotated
//! (`STORE_KEY_PREVIOUS`) and a missing or wrong key is told apart from anything else.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// Starts every sealed value: `sealed1:KEY_ID:BASE64(nonce ‖ ciphertext)`.
const PREFIX: &str = "sealed1:";
/// Bytes of an XChaCha20 nonce (random per value: no counter to keep).
const NONCE_LEN: usize = 24;

/// A `STORE_KEY`: 32 random bytes, written as 64 hex digits or in base64.
#[derive(Clone)]
pub struct StoreKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// Why a `STORE_KEY` was refused; never quotes the key.
#[derive(Debug, thiserror::Error)]
#[error("{0} must be 32 bytes as 64 hex digits or base64 (make one: openssl rand -hex 32)")]
pub struct InvalidStoreKey(pub &'static str);

impl StoreKey {
    /// Parses the value of the setting `name`.
    pub fn parse(name: &'static str, text: &str) -> Result<Self, InvalidStoreKey> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| InvalidStoreKey(name))?
        } else {
            STANDARD.decode(text).map_err(|_| InvalidStoreKey(name))?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|_| InvalidStoreKey(name))?;
        // The id names the key without revealing it: a hash, cut short.
        let digest = Sha256::new()
            .chain_update(b"mcp-asana-linker store key id\0")
            .chain_update(key)
            .finalize();
        let id = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            id,
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// The key's id, as sealed values name it.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({})", self.id)
    }
}

/// A secret that cannot be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Sealed with a key that is not set.
    #[error(
        "the store's secrets are sealed with a STORE_KEY (id {0}) that is not set: set STORE_KEY to that key (with the new key in STORE_KEY and this one in STORE_KEY_PREVIOUS while rotating)"
    )]
    UnknownKey(String),
    /// The key's id matches but the value does not open.
    #[error("a secret in the store does not open with STORE_KEY id {0}: the value was altered")]
    Corrupt(String),
    /// Sealing failed (a value beyond the cipher's limits).
    #[error("cannot seal a secret")]
    Seal,
}

/// Seals secrets under the current key and opens them under the current or previous one.
#[derive(Debug, Clone, Default)]
pub struct Sealer {
    current: Option<StoreKey>,
    previous: Option<StoreKey>,
}

impl Sealer {
    /// Seals with `current` (none: secrets are kept as they are); opens with either key.
    pub fn new(current: Option<StoreKey>, previous: Option<StoreKey>) -> Self {
        Self { current, previous }
    }

    /// `plain` as the store keeps it.
    pub fn seal(&self, plain: &str) -> Result<String, SealError> {
        let Some(key) = &self.current else {
            return Ok(plain.to_owned());
        };
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = key
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .map_err(|_| SealError::Seal)?;
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        Ok(format!("{PREFIX}{}:{}", key.id, STANDARD.encode(bytes)))
    }

    /// The secret in `stored`, sealed or not.
    pub fn open(&self, stored: &str) -> Result<SecretString, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(SecretString::from(stored));
        };
        let (id, data) = rest.split_once(':').unwrap_or((rest, ""));
        let key = [&self.current, &self.previous]
            .into_iter()
            .flatten()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let corrupt = || SealError::Corrupt(id.to_owned());
        let bytes = STANDARD.decode(data).map_err(|_| corrupt())?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| corrupt())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| corrupt())
    }

    /// Whether `stored` is as [`Sealer::seal`] would write it now: sealed with the current
    /// key, or plain when there is none.
    pub fn is_current(&self, stored: &str) -> bool {
        match (&self.current, stored.strip_prefix(PREFIX)) {
            (None, sealed) => sealed.is_none(),
            (Some(key), Some(rest)) => rest.split_once(':').is_some_and(|(id, _)| id == key.id),
            (Some(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key(text: &str) -> StoreKey {
        StoreKey::parse("STORE_KEY", text).expect("valid key")
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_never_shows_in_the_clear() {
        let sealer = Sealer::new(Some(key(KEY)), None);
        let sealed = sealer.seal("access-token-1").expect("sealed");
        assert!(!sealed.contains("access-token-1"));
        assert_ne!(
            sealed,
            sealer.seal("access-token-1").expect("sealed"),
            "random nonce"
        );
        assert_eq!(
            sealer.open(&sealed).expect("opens").expose_secret(),
            "access-token-1"
        );

        let other = Sealer::new(Some(key(&"ab".repeat(32))), None);
        assert!(matches!(other.open(&sealed), Err(SealError::UnknownKey(_))));
        assert!(matches!(
            Sealer::default().open(&sealed),
            Err(SealError::UnknownKey(_))
        ));
        let altered = format!("{}A", &sealed[..sealed.len() - 2]);
        assert!(matches!(sealer.open(&altered), Err(SealError::Corrupt(_))));
    }

    #[test]
    fn rotation_opens_the_previous_key_and_seals_with_the_new_one() {
        let old = Sealer::new(Some(key(KEY)), None);
        let sealed = old.seal("t").expect("sealed");
        let rotating = Sealer::new(Some(key(&"ab".repeat(32))), Some(key(KEY)));
        assert_eq!(rotating.open(&sealed).expect("opens").expose_secret(), "t");
        assert!(!rotating.is_current(&sealed));
        assert!(rotating.is_current(&rotating.seal("t").expect("sealed")));
        assert!(Sealer::default().is_current("plain"));
    }

    #[test]
    fn keys_are_32_bytes_in_hex_or_base64_and_errors_never_quote_them() {
        assert_eq!(
            key(KEY).id(),
            key(&STANDARD.encode((0..32u8).collect::<Vec<_>>())).id()
        );
        for bad in ["short", &"zz".repeat(32), &STANDARD.encode([1u8; 16])] {
            let error = StoreKey::parse("STORE_KEY", bad)
                .expect_err(bad)
                .to_string();
            assert!(!error.contains(bad), "{error}");
        }
    }
}

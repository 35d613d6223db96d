//! `X-Hook-Signature`: hex HMAC-SHA256 of the raw body, keyed with the hook's secret.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Whether `signature` is the hex HMAC-SHA256 of `body` under `secret` (constant-time).
pub fn verify_signature(secret: &SecretString, body: &[u8], signature: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return false;
    };
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let given = signature.trim().to_ascii_lowercase();
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_secret_and_body_verify() {
        let secret = SecretString::from("s3cret");
        // python3: hmac.new(b"s3cret", b"{}", hashlib.sha256).hexdigest()
        let signature = "adbde1ce40c89c14215687d5d762a47df6dfaefcfad61e2e86718ffc8498571b";

        assert!(verify_signature(&secret, b"{}", signature));
        assert!(verify_signature(&secret, b"{}", &signature.to_uppercase()));
        assert!(
            !verify_signature(&secret, b"{ }", signature),
            "tampered body"
        );
        assert!(
            !verify_signature(&SecretString::from("other"), b"{}", signature),
            "wrong secret"
        );
        assert!(!verify_signature(&secret, b"{}", ""), "no signature");
    }
}

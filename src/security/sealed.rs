//! Secrets at rest: text sealed with AES-256-GCM under a key derived from `SECRET_KEY`
//! for one purpose, so what sits in a table (a mail body with a reset link) is
//! unreadable without the service's secret. Older secrets (`SECRET_KEY_PREVIOUS`) still
//! open what was sealed before a rotation.
//!
//! A sealed value is `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`: the version
//! says how to read the rest, the key id (8 hex digits derived from the key, not the
//! key) which secret sealed it. Each value has a fresh random 96-bit nonce, and is bound
//! to associated data (e.g. its row id and field), so it cannot be moved to another
//! row or field and still open.

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngExt;

use super::opaque_token::hmac_bytes;

/// The version prefix of a sealed value.
const VERSION: &str = "v1";
const NONCE_BYTES: usize = 12;

/// Why a sealed value does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("not a sealed value of a known version")]
    Malformed,
    #[error("sealed under a key this instance does not have (a secret rotated away?)")]
    UnknownKey,
    #[error("does not authenticate (tampered with, or other associated data)")]
    Forged,
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    /// The key for `purpose` under `secret`: HMAC-SHA256(secret, label).
    fn derive(secret: &[u8], purpose: &str) -> Self {
        let label = format!("identity/{purpose}/{VERSION}");
        let key = hmac_bytes(secret, label.as_bytes());
        let id = hmac_bytes(&key, b"key-id")[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let cipher = Aes256Gcm::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("an HMAC-SHA256 output is a 256-bit key"));
        Self { id, cipher }
    }
}

/// Seals under the current secret; opens under it or any previous one.
pub struct Sealer {
    current: Key,
    previous: Vec<Key>,
}

impl Sealer {
    /// `purpose` separates keys: a value sealed for one purpose never opens for another.
    pub fn new(purpose: &str, secret: &[u8], previous: &[&[u8]]) -> Self {
        Self {
            current: Key::derive(secret, purpose),
            previous: previous
                .iter()
                .map(|old| Key::derive(old, purpose))
                .collect(),
        }
    }

    /// The sealer for `purpose` under the service's `SECRET_KEY`, opening what the
    /// `SECRET_KEY_PREVIOUS` secrets sealed.
    pub fn for_service(purpose: &str, tokens: &crate::config::TokenConfig) -> Self {
        use secrecy::ExposeSecret;
        let previous: Vec<&[u8]> = tokens
            .previous_secret_keys
            .iter()
            .map(|k| k.expose_secret().as_bytes())
            .collect();
        Self::new(
            purpose,
            tokens.secret_key.expose_secret().as_bytes(),
            &previous,
        )
    }

    /// Whether `stored` has the form of a sealed value (rather than legacy plain text).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(&format!("{VERSION}."))
    }

    pub fn seal(&self, associated: &[u8], plain: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: associated,
                },
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM seals any message under 64 GiB"));
        let mut bytes = Vec::with_capacity(NONCE_BYTES + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!(
            "{VERSION}.{}.{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// Whether `stored` was sealed under the current secret (else, after a rotation,
    /// it should be sealed again while it can still be opened).
    pub fn is_current(&self, stored: &str) -> bool {
        let mut parts = stored.splitn(3, '.');
        parts.next() == Some(VERSION) && parts.next() == Some(self.current.id.as_str())
    }

    pub fn open(&self, associated: &[u8], stored: &str) -> Result<String, OpenError> {
        let mut parts = stored.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(OpenError::Malformed);
        };
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or(OpenError::UnknownKey)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| OpenError::Malformed)?;
        if bytes.len() < NONCE_BYTES {
            return Err(OpenError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| OpenError::Malformed)?;
        let plain = key
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: associated,
                },
            )
            .map_err(|_| OpenError::Forged)?;
        String::from_utf8(plain).map_err(|_| OpenError::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"the current secret of the service, long enough";
    const OLD: &[u8] = b"the secret it had before the rotation, long too";
    const LINK: &str = "Reset: https://app.test/reset-password?token=abc123";

    fn sealer() -> Sealer {
        Sealer::new("outbox-body", SECRET, &[])
    }

    #[test]
    fn round_trip_hides_the_text() {
        let sealed = sealer().seal(b"row-1:text", LINK);
        assert!(Sealer::is_sealed(&sealed), "{sealed}");
        assert!(!sealed.contains("reset-password") && !sealed.contains("abc123"));
        assert_eq!(sealer().open(b"row-1:text", &sealed).unwrap(), LINK);
        // A fresh nonce each time: the same text never seals the same way twice.
        assert_ne!(sealer().seal(b"row-1:text", LINK), sealed);
    }

    #[test]
    fn a_tampered_value_or_other_associated_data_is_refused() {
        let sealed = sealer().seal(b"row-1:text", LINK);
        assert_eq!(
            sealer().open(b"row-2:text", &sealed),
            Err(OpenError::Forged)
        );
        // Flip one bit of the ciphertext.
        let (head, body) = sealed.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        bytes[NONCE_BYTES + 3] ^= 1;
        let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(
            sealer().open(b"row-1:text", &tampered),
            Err(OpenError::Forged)
        );
        assert_eq!(
            sealer().open(b"row-1:text", "v1.0000"),
            Err(OpenError::Malformed)
        );
        assert_eq!(
            sealer().open(b"row-1:text", LINK),
            Err(OpenError::Malformed)
        );
    }

    #[test]
    fn a_value_sealed_under_a_previous_secret_still_opens() {
        let before = Sealer::new("outbox-body", OLD, &[]).seal(b"row-1:html", LINK);
        let rotated = Sealer::new("outbox-body", SECRET, &[OLD]);
        assert_eq!(rotated.open(b"row-1:html", &before).unwrap(), LINK);
        // Once the old secret is dropped, it no longer opens, and says why.
        assert_eq!(
            sealer().open(b"row-1:html", &before),
            Err(OpenError::UnknownKey)
        );
    }

    #[test]
    fn keys_are_separated_by_purpose() {
        let sealed = sealer().seal(b"a", LINK);
        let other = Sealer::new("something-else", SECRET, &[]);
        assert_eq!(other.open(b"a", &sealed), Err(OpenError::UnknownKey));
    }
}

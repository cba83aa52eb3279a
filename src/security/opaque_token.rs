//! Opaque tokens (refresh and reset): 256 random bits, base64url. Only their SHA-256
//! is stored; with that much entropy a fast hash is enough.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2::{Digest, Sha256};

/// A fresh token of 32 random bytes.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored in place of a token.
pub fn digest(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// HMAC-SHA256 of `message` under `key`, base64url.
pub fn hmac(key: &[u8], message: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(hmac_bytes(key, message))
}

pub fn hmac_bytes(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), a);
    }

    #[test]
    fn hmac_is_deterministic_and_keyed() {
        assert_eq!(hmac(b"k1", b"m"), hmac(b"k1", b"m"));
        assert_ne!(hmac(b"k1", b"m"), hmac(b"k2", b"m"));
    }
}

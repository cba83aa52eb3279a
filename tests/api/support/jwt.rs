//! Reading and making JWTs, as a client or an attacker would.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

/// The `SECRET_KEY` every test server signs with, unless a test sets another.
pub(crate) const SECRET: &str = "test-secret-key-that-is-long-enough-0123456789";
/// The secret a rotation moves to (tests of `SECRET_KEY_PREVIOUS`).
pub(crate) const NEXT_SECRET: &str = "Xq3v9LmZt2R8bW1kP6sN0yH4jD7fG5cAx8Vb2Nm4";

/// The claims of a token, read without verifying it.
pub(crate) fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub(crate) fn header_of(token: &str) -> Header {
    jsonwebtoken::decode_header(token).unwrap()
}

pub(crate) fn kid_of(token: &str) -> String {
    header_of(token).kid.unwrap()
}

/// `claims` signed with HS256 over `secret`, with header `typ` and `kid`.
pub(crate) fn sign_hs256(claims: &Value, secret: &str, kid: &str, typ: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some(typ.to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// An Ed25519 private key (PKCS#8 PEM) made from a seed of `seed` bytes.
pub(crate) fn ed25519_pem(seed: u8) -> String {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap()
        .to_string()
}

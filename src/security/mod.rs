//! Cryptography and abuse controls: password hashing, JWTs, opaque tokens, rate limits.

pub mod jwt;
pub mod opaque_token;
pub mod password;
pub mod per_ip_limits;
pub mod sealed;
pub mod totp;

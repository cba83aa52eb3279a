//! Cryptography and abuse controls: password hashing, JWTs, opaque tokens, rate limits.

pub mod jwt;
pub mod password;
pub mod random;
pub mod rate_limit;
pub mod throttle;

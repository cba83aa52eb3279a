//! Password hashing (argon2id) and the length policy.

use super::{
    ConfigError,
    vars::{Described, Vars},
};
use crate::domain::password::MAX_LENGTH;

pub(super) const VARS: &[&str] = &[
    "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM",
    "PASSWORD_HASH_CONCURRENCY",
    "PASSWORD_HASH_QUEUE",
    "PASSWORD_HASH_CLIENT_SHARE",
    "PASSWORD_MIN_LENGTH",
];

#[derive(Debug, Clone)]
pub struct PasswordConfig {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Hashing threads: how many hashes run at once.
    pub hash_concurrency: usize,
    /// Hashes that may wait for a thread; beyond, callers are told to retry.
    pub hash_queue: usize,
    /// The percentage of the hashing places (running + queued) one client may hold at
    /// once; beyond, that client is told to retry while others still get a place.
    pub hash_client_share: u8,
    pub min_length: usize,
}

impl PasswordConfig {
    /// One hashing thread per core by default.
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let password = Self {
            argon2_memory_kib: vars.positive("ARGON2_MEMORY_KIB", 19_456, 4 * 1024 * 1024)?,
            argon2_iterations: vars.positive("ARGON2_ITERATIONS", 2, 64)?,
            argon2_parallelism: vars.positive("ARGON2_PARALLELISM", 1, 64)?,
            hash_concurrency: vars.positive("PASSWORD_HASH_CONCURRENCY", cores, 1024)?,
            hash_queue: vars.positive("PASSWORD_HASH_QUEUE", 128, 100_000)?,
            hash_client_share: vars.positive("PASSWORD_HASH_CLIENT_SHARE", 25, 100)?,
            min_length: vars.positive("PASSWORD_MIN_LENGTH", 8, 64)?,
        };
        if let Err(e) = argon2::Params::new(
            password.argon2_memory_kib,
            password.argon2_iterations,
            password.argon2_parallelism,
            None,
        ) {
            return Err(ConfigError::new(
                "ARGON2_MEMORY_KIB",
                format!("invalid argon2 parameters: {e}"),
            ));
        }
        if password.min_length > MAX_LENGTH {
            return Err(ConfigError::new(
                "PASSWORD_MIN_LENGTH",
                format!("must not exceed the maximum length {MAX_LENGTH}"),
            ));
        }
        Ok(password)
    }

    pub(super) fn describe(&self) -> Described {
        vec![
            ("ARGON2_MEMORY_KIB", self.argon2_memory_kib.to_string()),
            ("ARGON2_ITERATIONS", self.argon2_iterations.to_string()),
            ("ARGON2_PARALLELISM", self.argon2_parallelism.to_string()),
            (
                "PASSWORD_HASH_CONCURRENCY",
                self.hash_concurrency.to_string(),
            ),
            ("PASSWORD_HASH_QUEUE", self.hash_queue.to_string()),
            (
                "PASSWORD_HASH_CLIENT_SHARE",
                self.hash_client_share.to_string(),
            ),
            ("PASSWORD_MIN_LENGTH", self.min_length.to_string()),
        ]
    }
}

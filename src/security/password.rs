//! argon2id hashing on the blocking pool, with bounded concurrency, so that a burst of
//! logins queues for the cores instead of stalling the async runtime.

use std::sync::Arc;

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::config::PasswordConfig;

/// Longest input hashed, in bytes. The policy allows 128 code points (at most 512
/// bytes); anything longer cannot be a valid password and is not worth hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Invalid,
    Valid { needs_rehash: bool },
}

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    permits: Semaphore,
    /// Verified against when the email is unknown, so that answer costs the same.
    dummy_hash: String,
}

impl Inner {
    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

impl PasswordHasher {
    pub fn new(cfg: &PasswordConfig) -> anyhow::Result<Self> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let dummy_hash = argon2
            .hash_password(crate::security::random::token().as_bytes())
            .map_err(|e| anyhow::anyhow!("hash the dummy password: {e}"))?
            .to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                permits: Semaphore::new(cfg.hash_concurrency.max(1)),
                dummy_hash,
            }),
        })
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) with the current parameters.
    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        self.run(move |inner| {
            inner
                .argon2()
                .hash_password(capped(&password))
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hash password: {e}"))
        })
        .await
    }

    /// Checks a password against a stored hash, or against a dummy hash when there is
    /// none, so that an unknown account costs the same time as a known one.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> anyhow::Result<Verification> {
        let known = stored.is_some();
        self.run(move |inner| {
            let stored = stored.as_deref().unwrap_or(&inner.dummy_hash);
            let Ok(parsed) = PasswordHash::new(stored) else {
                // An unreadable stored hash must not lock the user out silently.
                tracing::error!("stored password hash cannot be parsed");
                return Ok(Verification::Invalid);
            };
            let ok = inner
                .argon2()
                .verify_password(capped(&password), &parsed)
                .is_ok();
            Ok(match (known, ok) {
                (true, true) => Verification::Valid {
                    needs_rehash: needs_rehash(&parsed, &inner.params),
                },
                _ => Verification::Invalid,
            })
        })
        .await
    }

    /// Runs hashing work on the blocking pool once a permit is free, in the caller's span.
    async fn run<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        F: FnOnce(&Inner) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .context("password hasher closed")?;
        let inner = Arc::clone(&self.inner);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| work(&inner)))
            .await
            .context("password hashing task failed")?
    }
}

fn capped(password: &SecretString) -> &[u8] {
    let bytes = password.expose_secret().as_bytes();
    &bytes[..bytes.len().min(MAX_PASSWORD_BYTES)]
}

/// A hash made with another algorithm, version or cost than the current one.
fn needs_rehash(hash: &PasswordHash, current: &Params) -> bool {
    if hash.algorithm != argon2::ARGON2ID_IDENT || hash.version != Some(Version::V0x13.into()) {
        return true;
    }
    match Params::try_from(hash) {
        Ok(p) => {
            p.m_cost() != current.m_cost()
                || p.t_cost() != current.t_cost()
                || p.p_cost() != current.p_cost()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(m: u32, t: u32) -> PasswordConfig {
        PasswordConfig {
            argon2_memory_kib: m,
            argon2_iterations: t,
            argon2_parallelism: 1,
            hash_concurrency: 2,
            min_length: 8,
        }
    }

    #[tokio::test]
    async fn hashes_with_argon2id_and_the_configured_cost() {
        let hasher = PasswordHasher::new(&cfg(19_456, 2)).unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap(),
            Verification::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap(),
            Verification::Invalid
        );
        assert_eq!(
            hasher.verify("anything".into(), None).await.unwrap(),
            Verification::Invalid
        );
    }

    #[tokio::test]
    async fn older_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(&cfg(8_192, 1)).unwrap();
        let hash = old.hash("correct horse".into()).await.unwrap();
        let current = PasswordHasher::new(&cfg(19_456, 2)).unwrap();
        assert_eq!(
            current
                .verify("correct horse".into(), Some(hash))
                .await
                .unwrap(),
            Verification::Valid { needs_rehash: true }
        );
    }
}

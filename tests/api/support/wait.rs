//! Waiting for something to happen, instead of sleeping for a guessed time.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// How long `eventually` waits between two looks.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What one look found: `Some` / `Ok` ends the wait with its value; `None` / `Err`
/// (what was seen instead) means not yet.
pub(crate) trait Observation {
    type Value;
    fn into_result(self) -> Result<Self::Value, String>;
}

impl<T> Observation for Option<T> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".to_owned())
    }
}

impl<T> Observation for Result<T, String> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self
    }
}

/// Looks with `check` every `POLL_INTERVAL` until it finds what it waits for, and
/// returns that. After `timeout`, panics naming `what` and the last observation.
pub(crate) async fn eventually<T, F, Fut, O>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
    O: Observation<Value = T>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await.into_result() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last observation: {last}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

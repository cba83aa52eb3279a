//! Work done off the request path (mail), with bounded concurrency, tracked so that
//! shutdown can wait for it.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

#[derive(Clone)]
pub struct Background {
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
}

impl Background {
    pub fn new(concurrency: usize) -> Self {
        Self {
            tracker: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Starts `task` now; it runs once a permit is free. Returns at once.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let permits = Arc::clone(&self.permits);
        let span = tracing::Span::current();
        self.tracker.spawn(
            async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                task.await;
            }
            .instrument(span),
        );
    }

    /// Waits (at most `limit`) for the tasks started so far. Returns whether all ended.
    pub async fn drain(&self, limit: Duration) -> bool {
        self.tracker.close();
        let done = tokio::time::timeout(limit, self.tracker.wait())
            .await
            .is_ok();
        self.tracker.reopen();
        done
    }
}

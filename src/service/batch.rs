//! A bounded queue drained by one worker task in batches: the worker waits for an
//! item, takes whatever else is queued (up to a batch), hands the items to its handler
//! in one call, and then answers the flush requests that were queued with them. The
//! audit writer and the reset-request worker are built on it.

use std::{fmt, future::Future, time::Duration};

use tokio::sync::{mpsc, oneshot};

enum Command<T> {
    Item(T),
    Flush(oneshot::Sender<()>),
    /// The worker may hold a handle of its own queue (inside `Deps`), so it cannot
    /// wait for every handle to be gone: it is told to stop.
    Stop,
}

/// The senders' end of a queue: cheap to clone.
pub struct BatchQueue<T> {
    tx: mpsc::Sender<Command<T>>,
}

impl<T> Clone for BatchQueue<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

/// The worker's end of a queue: `run` it on a task.
pub struct BatchReceiver<T> {
    rx: mpsc::Receiver<Command<T>>,
}

/// The worker has stopped: nothing queued now would be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the worker has stopped")
    }
}

impl std::error::Error for Stopped {}

/// Why `push_within` did not queue an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// No room came within the limit.
    Full,
    Stopped,
}

impl<T> BatchQueue<T> {
    /// A queue holding up to `capacity` commands; once full, `push` waits for room.
    pub fn new(capacity: usize) -> (Self, BatchReceiver<T>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx }, BatchReceiver { rx })
    }

    pub async fn push(&self, item: T) -> Result<(), Stopped> {
        self.tx.send(Command::Item(item)).await.map_err(|_| Stopped)
    }

    /// As `push`, waiting at most `limit` for room in a full queue.
    pub async fn push_within(&self, item: T, limit: Duration) -> Result<(), PushError> {
        self.tx
            .send_timeout(Command::Item(item), limit)
            .await
            .map_err(|error| match error {
                mpsc::error::SendTimeoutError::Timeout(_) => PushError::Full,
                mpsc::error::SendTimeoutError::Closed(_) => PushError::Stopped,
            })
    }

    /// Waits (at most `limit`) until every item pushed so far is handled.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_err() {
            return false;
        }
        tokio::time::timeout(limit, wait)
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Handles what is queued (waiting at most `limit`), then stops the worker.
    pub async fn stop(&self, limit: Duration) -> bool {
        let flushed = self.flush(limit).await;
        let _ = self.tx.send(Command::Stop).await;
        flushed
    }
}

impl<T> BatchReceiver<T> {
    /// The worker: hands up to `batch` items at a time to `handle`, until it is told
    /// to stop or every queue handle is gone.
    pub async fn run<F, Fut>(mut self, batch: usize, mut handle: F)
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut commands = Vec::with_capacity(batch);
        // Waits for one command, then takes whatever else is queued (up to a batch).
        while self.rx.recv_many(&mut commands, batch).await > 0 {
            let mut items = Vec::with_capacity(commands.len());
            let mut waiting = Vec::new();
            let mut stopping = false;
            for command in commands.drain(..) {
                match command {
                    Command::Item(item) => items.push(item),
                    Command::Flush(done) => waiting.push(done),
                    Command::Stop => stopping = true,
                }
            }
            if !items.is_empty() {
                handle(items).await;
            }
            for done in waiting {
                let _ = done.send(());
            }
            if stopping {
                return;
            }
        }
    }
}

/// A queue whose worker runs on a task of the current runtime.
pub fn spawn<T, F, Fut>(capacity: usize, batch: usize, handle: F) -> BatchQueue<T>
where
    T: Send + 'static,
    F: FnMut(Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (queue, receiver) = BatchQueue::new(capacity);
    tokio::spawn(receiver.run(batch, handle));
    queue
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::Semaphore;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    type Handled = Arc<Mutex<Vec<Vec<u32>>>>;

    fn new_queue() -> (BatchQueue<u32>, BatchReceiver<u32>, Handled) {
        let (queue, receiver) = BatchQueue::new(64);
        (queue, receiver, Handled::default())
    }

    /// A worker that records each batch it is handed, once `gate` lets it.
    async fn run_recording(
        receiver: BatchReceiver<u32>,
        batch: usize,
        handled: Handled,
        gate: Arc<Semaphore>,
    ) {
        receiver
            .run(batch, |items| {
                let handled = Arc::clone(&handled);
                let gate = Arc::clone(&gate);
                async move {
                    if let Ok(permit) = gate.acquire().await {
                        permit.forget();
                    }
                    handled.lock().unwrap().push(items);
                }
            })
            .await;
    }

    fn open() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(Semaphore::MAX_PERMITS))
    }

    #[tokio::test]
    async fn hands_over_what_is_queued_in_batches() {
        let gate = open();
        let (queue, receiver, handled) = new_queue();
        for n in 0..10 {
            queue.push(n).await.unwrap();
        }
        tokio::spawn(run_recording(receiver, 4, Arc::clone(&handled), gate));
        assert!(queue.flush(LIMIT).await);
        assert_eq!(
            *handled.lock().unwrap(),
            [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
        );
    }

    #[tokio::test]
    async fn flush_waits_for_what_was_queued_before_it() {
        let gate = Arc::new(Semaphore::new(0));
        let (queue, receiver, handled) = new_queue();
        tokio::spawn(run_recording(
            receiver,
            4,
            Arc::clone(&handled),
            Arc::clone(&gate),
        ));
        queue.push(1).await.unwrap();
        // The handler is held at the gate: the flush cannot be answered.
        assert!(!queue.flush(Duration::from_millis(50)).await);
        assert!(handled.lock().unwrap().is_empty());
        queue.push(2).await.unwrap();
        gate.add_permits(Semaphore::MAX_PERMITS / 2);
        assert!(queue.flush(LIMIT).await);
        assert_eq!(handled.lock().unwrap().concat(), [1, 2]);
    }

    #[tokio::test]
    async fn stop_handles_what_is_queued_and_ends_the_worker() {
        let gate = open();
        let (queue, receiver, handled) = new_queue();
        let worker = tokio::spawn(run_recording(receiver, 4, Arc::clone(&handled), gate));
        queue.push(7).await.unwrap();
        assert!(queue.stop(LIMIT).await);
        // Ends although a handle of the queue is still alive.
        tokio::time::timeout(LIMIT, worker)
            .await
            .expect("the worker ended")
            .unwrap();
        assert_eq!(handled.lock().unwrap().concat(), [7]);
        assert_eq!(queue.push(8).await, Err(Stopped));
        assert!(!queue.flush(LIMIT).await);
    }

    #[tokio::test]
    async fn push_within_gives_up_on_a_full_queue_in_time() {
        let (queue, receiver) = BatchQueue::new(1);
        queue.push_within(1, LIMIT).await.unwrap();
        // No worker yet: the queue stays full, and the second push is refused.
        assert_eq!(
            queue.push_within(2, Duration::from_millis(50)).await,
            Err(PushError::Full)
        );
        let handled = Handled::default();
        tokio::spawn(run_recording(receiver, 4, Arc::clone(&handled), open()));
        queue.push_within(3, LIMIT).await.unwrap();
        assert!(queue.stop(LIMIT).await);
        assert_eq!(handled.lock().unwrap().concat(), [1, 3]);
        assert_eq!(queue.push_within(4, LIMIT).await, Err(PushError::Stopped));
    }

    #[tokio::test]
    async fn spawn_starts_a_worker() {
        let handled = Handled::default();
        let recorded = Arc::clone(&handled);
        let queue = spawn(8, 8, move |items| {
            let recorded = Arc::clone(&recorded);
            async move { recorded.lock().unwrap().push(items) }
        });
        queue.push(3).await.unwrap();
        assert!(queue.flush(LIMIT).await);
        assert_eq!(handled.lock().unwrap().concat(), [3]);
    }
}

//! argon2id hashing on a fixed pool of threads, fed by a bounded queue.
//!
//! The async runtime never hashes: a burst of logins queues for the hashing threads
//! instead of stalling other requests. When the queue is full the answer comes at
//! once (`RATE_LIMITED`, retry in a second) rather than after an ever-growing wait.
//! Each thread keeps one argon2 workspace (`m` KiB) and reuses it while hashes keep
//! coming, so memory is bounded by threads × `m` and a busy thread never pays for
//! allocating and page-faulting 19 MiB of fresh memory; a thread left idle for
//! `IDLE_RELEASE` gives its workspace back, so a quiet service does not hold
//! threads × `m` for nothing.
//!
//! A caller first takes a place ([`PasswordHasher::reserve`]): one of the queued +
//! running places (`PASSWORD_HASH_QUEUE` + `PASSWORD_HASH_CONCURRENCY`), of which one
//! client may hold at most `PASSWORD_HASH_CLIENT_SHARE` percent, so one client cannot
//! take every place. A place, once held, always gets its hash: a login can count its
//! attempt after taking one, and an attempt refused for want of a place is not counted.
//! A place whose hash, by the average hash time, would be done only after the bound
//! set with [`PasswordHasher::bound_wait`] (half the request timeout) is refused too:
//! the caller hears `RATE_LIMITED` at once rather than a timeout later.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::phc::{Output, ParamsString, Salt},
};
use crossbeam_channel::{RecvTimeoutError, Sender, TrySendError};
use metrics::{Counter, Gauge, Histogram};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use crate::{config::PasswordConfig, domain::client::ClientKey, metrics::Metrics};

/// Longest input hashed, in bytes. The policy allows 128 code points (at most 512
/// bytes); anything longer cannot be a valid password and is not worth hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A hashing thread idle this long frees its workspace.
const IDLE_RELEASE: Duration = Duration::from_secs(10);

/// What a caller is told to wait when the queue is full.
const BUSY_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Invalid,
    Valid { needs_rehash: bool },
}

type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

/// A hashing thread's reusable memory, and the parameters new hashes use.
pub struct Workspace {
    params: Params,
    blocks: Vec<Block>,
}

impl Workspace {
    fn new(params: Params) -> Self {
        Self {
            params,
            blocks: Vec::new(),
        }
    }

    /// Gives the memory back; the next hash allocates it again.
    fn release(&mut self) {
        self.blocks = Vec::new();
    }

    /// At least `count` blocks, allocated once and then reused.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.len() < count {
            self.blocks.resize(count, Block::default());
        }
        &mut self.blocks[..count]
    }

    /// A PHC string, exactly as `Argon2::hash_password` would make it.
    fn hash(&mut self, password: &[u8]) -> anyhow::Result<String> {
        let salt = argon2::password_hash::generate_salt();
        self.hash_with_salt(password, &salt)
    }

    fn hash_with_salt(&mut self, password: &[u8], salt: &[u8]) -> anyhow::Result<String> {
        let params = self.params.clone();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon2
            .hash_password_into_with_memory(
                password,
                salt,
                &mut output,
                self.blocks(params.block_count()),
            )
            .map_err(|e| anyhow::anyhow!("hash password: {e}"))?;
        let phc = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)
                .map_err(|e| anyhow::anyhow!("encode parameters: {e}"))?,
            salt: Some(Salt::new(salt).map_err(|e| anyhow::anyhow!("encode salt: {e}"))?),
            hash: Some(Output::new(&output).map_err(|e| anyhow::anyhow!("encode hash: {e}"))?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches `stored`, computed with the stored hash's own
    /// algorithm, version and cost, and compared in constant time.
    fn verify(&mut self, password: &[u8], stored: &PasswordHash) -> bool {
        let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else {
            return false;
        };
        let version = match stored.version.map(Version::try_from) {
            None => Version::V0x13,
            Some(Ok(version)) => version,
            Some(Err(_)) => return false,
        };
        let Ok(params) = Params::try_from(stored) else {
            return false;
        };
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut output = vec![0u8; expected.len()];
        argon2
            .hash_password_into_with_memory(
                password,
                salt.as_ref(),
                &mut output,
                self.blocks(params.block_count()),
            )
            .is_ok()
            && Output::new(&output).is_ok_and(|computed| &computed == expected)
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// Verified against when the email is unknown, so that answer costs the same.
    dummy_hash: String,
    /// What one verification at the current parameters takes (nanoseconds, a moving
    /// average): a hash of cheaper, older parameters is answered no sooner, so its
    /// account does not stand out by its speed.
    verify_cost: Arc<AtomicU64>,
    jobs: Sender<Job>,
    /// Places for hashes, queued or running.
    capacity: usize,
    /// Places one client may hold at once.
    per_client: usize,
    threads: usize,
    /// How long one hash takes, averaged (µs): what a place in the queue will wait.
    job_time_us: AtomicU64,
    /// The longest a new place may expect to wait for its hash to be done (µs; 0: no
    /// bound): beyond, it is refused rather than answered after the request timed out.
    max_wait_us: AtomicU64,
    places: Mutex<Places>,
    /// When a caller was last refused because every place was taken (ms since
    /// `epoch`, plus one; 0: never).
    last_full: AtomicU64,
    epoch: Instant,
    depth: Gauge,
    hash_time: Histogram,
    verify_time: Histogram,
    rejected_full: Counter,
    rejected_share: Counter,
}

/// The places taken, in all and by client.
#[derive(Default)]
struct Places {
    total: usize,
    by_client: HashMap<ClientKey, usize>,
}

/// How busy the hashing threads are, for readiness.
#[derive(Debug, Clone, Copy)]
pub struct Saturation {
    /// Places taken (queued + running) and there are.
    pub taken: usize,
    pub capacity: usize,
    /// How long ago a caller was last refused because every place was taken.
    pub last_full: Option<Duration>,
}

impl Saturation {
    pub fn is_full(&self) -> bool {
        self.taken >= self.capacity
    }
}

/// A place for one hash, held by a client; given back when the hash is done (or when
/// dropped unused).
pub struct HashPlace {
    inner: Arc<Inner>,
    client: ClientKey,
}

impl Drop for HashPlace {
    fn drop(&mut self) {
        let mut places = self.inner.lock_places();
        places.total = places.total.saturating_sub(1);
        if let Some(held) = places.by_client.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                places.by_client.remove(&self.client);
            }
        }
    }
}

impl Inner {
    /// Whether a new place, behind `taken` others, would expect its hash done later
    /// than the bound: the queue is full in time before it is full in places.
    fn would_wait_too_long(&self, taken: usize) -> bool {
        let max = self.max_wait_us.load(Ordering::Relaxed);
        if max == 0 || taken < self.threads {
            return false;
        }
        // Rounds of hashing before this one starts, then its own.
        let rounds = u64::try_from((taken - self.threads) / self.threads + 2).unwrap_or(u64::MAX);
        rounds.saturating_mul(self.job_time_us.load(Ordering::Relaxed)) > max
    }

    /// Folds one hash's duration into the average (1/8 weight).
    fn record_job_time(&self, took: Duration) {
        let old = self.job_time_us.load(Ordering::Relaxed);
        let new = old - old / 8 + micros(took) / 8;
        self.job_time_us.store(new, Ordering::Relaxed);
    }

    fn lock_places(&self) -> std::sync::MutexGuard<'_, Places> {
        // Each change is a count or two: a panic cannot leave them half-done.
        self.places.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PasswordHasher {
    pub fn new(cfg: &PasswordConfig, metrics: &Metrics) -> anyhow::Result<Self> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let started = Instant::now();
        let dummy_hash = Workspace::new(params.clone())
            .hash(crate::security::opaque_token::generate().as_bytes())
            .context("hash the dummy password")?;
        let first_hash = started.elapsed();
        // Hashing and verifying cost the same: the first estimate.
        let verify_cost = Arc::new(AtomicU64::new(nanos(first_hash)));

        let threads = cfg.hash_concurrency.max(1);
        let capacity = cfg.hash_queue + threads;
        let per_client = (capacity * usize::from(cfg.hash_client_share))
            .div_ceil(100)
            .clamp(1, capacity);
        // Never full: no more jobs are queued than there are places.
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(capacity);
        for n in 0..threads {
            let queue = queue.clone();
            let mut workspace = Workspace::new(params.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        match queue.recv_timeout(IDLE_RELEASE) {
                            Ok(job) => job(&mut workspace),
                            Err(RecvTimeoutError::Timeout) => workspace.release(),
                            // Every sender dropped: the service is gone.
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                })
                .context("start a hashing thread")?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                dummy_hash,
                verify_cost,
                jobs,
                capacity,
                per_client,
                threads,
                job_time_us: AtomicU64::new(micros(first_hash)),
                max_wait_us: AtomicU64::new(0),
                places: Mutex::default(),
                last_full: AtomicU64::new(0),
                epoch: Instant::now(),
                depth: metrics.gauge("identity_password_hash_queue_depth", &[]),
                hash_time: metrics
                    .histogram("identity_password_hash_duration_seconds", &[("op", "hash")]),
                verify_time: metrics.histogram(
                    "identity_password_hash_duration_seconds",
                    &[("op", "verify")],
                ),
                rejected_full: metrics.counter(
                    "identity_password_hash_rejected_total",
                    &[("reason", "queue_full")],
                ),
                rejected_share: metrics.counter(
                    "identity_password_hash_rejected_total",
                    &[("reason", "client_share")],
                ),
            }),
        })
    }

    /// Takes a place for one hash on behalf of `client`: `Busy` when every place is
    /// taken, or when `client` holds its share of them already.
    pub fn reserve(&self, client: ClientKey) -> Result<HashPlace, HashError> {
        let inner = &self.inner;
        let mut places = inner.lock_places();
        if places.total >= inner.capacity || inner.would_wait_too_long(places.total) {
            drop(places);
            let since = u64::try_from(inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            inner
                .last_full
                .store(since.saturating_add(1), Ordering::Relaxed);
            inner.rejected_full.increment(1);
            return Err(HashError::Busy {
                retry_after: BUSY_RETRY,
            });
        }
        let held = places.by_client.entry(client).or_default();
        if *held >= inner.per_client {
            drop(places);
            inner.rejected_share.increment(1);
            return Err(HashError::Busy {
                retry_after: BUSY_RETRY,
            });
        }
        *held += 1;
        places.total += 1;
        Ok(HashPlace {
            inner: Arc::clone(inner),
            client,
        })
    }

    /// Refuses a place whose hash would expect to be done later than `max` from now
    /// (the request timeout's share for hashing), judged by the average hash time.
    pub fn bound_wait(&self, max: Duration) {
        self.inner
            .max_wait_us
            .store(micros(max).max(1), Ordering::Relaxed);
    }

    /// How many places are taken, and when a caller last found none.
    pub fn saturation(&self) -> Saturation {
        let inner = &self.inner;
        let taken = inner.lock_places().total;
        let last_full = match inner.last_full.load(Ordering::Relaxed) {
            0 => None,
            at => Some(
                inner
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(at - 1)),
            ),
        };
        Saturation {
            taken,
            capacity: inner.capacity,
            last_full,
        }
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) with the current
    /// parameters, in a place taken for `client`.
    pub async fn hash(
        &self,
        client: ClientKey,
        password: SecretString,
    ) -> Result<String, HashError> {
        self.reserve(client)?.hash(password).await
    }

    /// [`HashPlace::verify`], in a place taken for `client`.
    pub async fn verify(
        &self,
        client: ClientKey,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        self.reserve(client)?.verify(password, stored).await
    }
}

impl HashPlace {
    /// A PHC string with the current parameters.
    pub async fn hash(self, password: SecretString) -> Result<String, HashError> {
        let timer = self.inner.hash_time.clone();
        self.run(timer, move |workspace| workspace.hash(capped(&password)))
            .await
    }

    /// Checks a password against a stored hash, or against a dummy hash when there is
    /// none, so that an unknown account costs the same time as a known one. A hash of
    /// cheaper (older) parameters is answered no sooner than one of the current
    /// parameters, so an account not yet re-hashed does not stand out either.
    pub async fn verify(
        self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let known = stored.is_some();
        let current = self.inner.params.clone();
        let stored = stored.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let timer = self.inner.verify_time.clone();
        let cost = Arc::clone(&self.inner.verify_cost);
        let (verification, work) = self
            .run(timer, move |workspace| {
                let started = Instant::now();
                let Ok(parsed) = PasswordHash::new(&stored) else {
                    // An unreadable stored hash must not lock the user out silently.
                    tracing::error!("stored password hash cannot be parsed");
                    return Ok((Verification::Invalid, Work::Other(started.elapsed())));
                };
                let ok = workspace.verify(capped(&password), &parsed);
                let old = needs_rehash(&parsed, &current);
                let work = if old {
                    Work::Other(started.elapsed())
                } else {
                    Work::Current(started.elapsed())
                };
                let verification = match (known, ok) {
                    (true, true) => Verification::Valid { needs_rehash: old },
                    _ => Verification::Invalid,
                };
                Ok((verification, work))
            })
            .await?;
        match work {
            Work::Current(took) => {
                // A moving average over the last few verifications.
                let before = cost.load(Ordering::Relaxed);
                let after = before - before / 4 + nanos(took) / 4;
                cost.store(after, Ordering::Relaxed);
            }
            Work::Other(took) => {
                let expected = Duration::from_nanos(cost.load(Ordering::Relaxed));
                if let Some(rest) = expected.checked_sub(took) {
                    tokio::time::sleep(rest).await;
                }
            }
        }
        Ok(verification)
    }

    /// Queues `work` for a hashing thread, in the caller's span, and waits for it; the
    /// place is given back when the work is done.
    async fn run<T, F>(self, timer: Histogram, work: F) -> Result<T, HashError>
    where
        F: FnOnce(&mut Workspace) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let span = tracing::Span::current();
        let inner = Arc::clone(&self.inner);
        let depth = inner.depth.clone();
        let place = self;
        let job: Job = Box::new(move |workspace| {
            depth.decrement(1.0);
            let _entered = span.enter();
            let started = Instant::now();
            let outcome = work(workspace);
            let took = started.elapsed();
            timer.record(took);
            place.inner.record_job_time(took);
            drop(place);
            let _ = done.send(outcome);
        });
        inner.depth.increment(1.0);
        match inner.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // Cannot happen (the queue has room for every place); refused all the same.
                inner.depth.decrement(1.0);
                inner.rejected_full.increment(1);
                return Err(HashError::Busy {
                    retry_after: BUSY_RETRY,
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                inner.depth.decrement(1.0);
                return Err(HashError::Failed(anyhow::anyhow!(
                    "hashing threads are gone"
                )));
            }
        }
        let outcome = result.await.context("hashing thread dropped the job")?;
        Ok(outcome?)
    }
}

/// How long a verification worked, and whether at the current parameters.
enum Work {
    Current(Duration),
    Other(Duration),
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Why a hash or verification did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// No place for the hash: every place is taken, or the client holds its share of
    /// them. The caller should retry after `retry_after` (the client is told
    /// `RATE_LIMITED`).
    #[error("the password hashing queue is full")]
    Busy { retry_after: std::time::Duration },
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Hashing threads run at the lowest priority of the normal policy (nice 19): when the
/// cores are busy, a flood of logins slows logins, not every other request; with nothing
/// else to run they still get all the CPU. Not `SCHED_IDLE`, which was tried: a thread
/// at that policy can be kept off the CPU for as long as the cores stay busy, holding
/// whatever lock it holds (an allocator's, the memory map's while it page-faults its
/// workspace) all that time; at nice 19 it still gets a small share.
#[cfg(target_os = "linux")]
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let lowest = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    if let Err(error) =
        set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, lowest)
    {
        tracing::warn!(error = %format!("{error:#}"), "hashing threads keep the normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
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

    fn client(n: u8) -> ClientKey {
        ClientKey::new([192, 0, 2, n].into(), 64)
    }

    fn cfg(m: u32, t: u32, threads: usize, queue: usize) -> PasswordConfig {
        PasswordConfig {
            argon2_memory_kib: m,
            argon2_iterations: t,
            argon2_parallelism: 1,
            hash_concurrency: threads,
            hash_queue: queue,
            hash_client_share: 100,
            min_length: 8,
        }
    }

    #[tokio::test]
    async fn hashes_with_argon2id_and_the_configured_cost() {
        let hasher = PasswordHasher::new(&cfg(19_456, 2, 2, 8), &Metrics::new()).unwrap();
        let hash = hasher
            .hash(client(1), "correct horse".into())
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            hasher
                .verify(client(1), "correct horse".into(), Some(hash.clone()))
                .await
                .unwrap(),
            Verification::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher
                .verify(client(1), "wrong horse".into(), Some(hash))
                .await
                .unwrap(),
            Verification::Invalid
        );
        assert_eq!(
            hasher
                .verify(client(1), "anything".into(), None)
                .await
                .unwrap(),
            Verification::Invalid
        );
    }

    #[test]
    fn a_released_workspace_hashes_and_verifies_as_before() {
        let params = Params::new(8_192, 1, 1, None).unwrap();
        let mut workspace = Workspace::new(params);
        let phc = workspace.hash(b"correct horse").unwrap();
        workspace.release();
        assert!(workspace.blocks.is_empty(), "the memory is given back");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(workspace.verify(b"correct horse", &parsed));
        assert!(!workspace.verify(b"wrong horse", &parsed));
    }

    #[tokio::test]
    async fn older_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(&cfg(8_192, 1, 1, 8), &Metrics::new()).unwrap();
        let hash = old.hash(client(1), "correct horse".into()).await.unwrap();
        let current = PasswordHasher::new(&cfg(19_456, 2, 1, 8), &Metrics::new()).unwrap();
        assert_eq!(
            current
                .verify(client(1), "correct horse".into(), Some(hash))
                .await
                .unwrap(),
            Verification::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn a_hash_of_older_cheaper_parameters_answers_no_sooner() {
        // An account still on the old, cheap parameters: a wrong password against it
        // must not be answered faster than one against an account on the current ones
        // (or an unknown address), or the timing tells them apart.
        let old = PasswordHasher::new(&cfg(1_024, 1, 1, 8), &Metrics::new()).unwrap();
        let old_hash = old.hash(client(1), "correct horse".into()).await.unwrap();
        let current = PasswordHasher::new(&cfg(19_456, 2, 1, 8), &Metrics::new()).unwrap();
        let mut at_current = Duration::MAX;
        for _ in 0..9 {
            let started = Instant::now();
            current
                .verify(client(1), "wrong horse".into(), None)
                .await
                .unwrap();
            at_current = at_current.min(started.elapsed());
        }
        let started = Instant::now();
        let answer = current
            .verify(client(1), "wrong horse".into(), Some(old_hash))
            .await
            .unwrap();
        let at_old = started.elapsed();
        assert_eq!(answer, Verification::Invalid);
        assert!(
            at_old >= at_current.mul_f64(0.8),
            "old parameters answered in {at_old:?}, current in {at_current:?}"
        );
    }

    #[test]
    fn workspace_hashes_are_those_of_the_argon2_crate() {
        use argon2::{CustomizedPasswordHasher, PasswordHasher as _, PasswordVerifier as _};
        let params = Params::new(19_456, 2, 1, None).unwrap();
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = [7u8; 16];
        let expected = reference
            .hash_password_customized(b"correct horse", &salt, None, None, params.clone())
            .unwrap()
            .to_string();
        let mut workspace = Workspace::new(params);
        // A reused (dirty) workspace gives the same answer as a fresh one.
        for _ in 0..2 {
            assert_eq!(
                workspace.hash_with_salt(b"correct horse", &salt).unwrap(),
                expected
            );
        }
        // Each side verifies the other's hashes.
        let ours = workspace.hash(b"correct horse").unwrap();
        assert!(
            reference
                .verify_password(b"correct horse", ours.as_str())
                .is_ok()
        );
        let theirs = reference.hash_password(b"battery staple").unwrap();
        assert!(workspace.verify(b"battery staple", &theirs));
        assert!(!workspace.verify(b"battery stapler", &theirs));
        // Older costs and other variants verify too (the workspace grows as needed).
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(32_768, 1, 1, None).unwrap(),
        );
        let old = argon2i.hash_password(b"legacy").unwrap();
        assert!(workspace.verify(b"legacy", &old));
    }

    #[tokio::test]
    async fn a_full_queue_answers_at_once() {
        // One thread, a queue of one: of three simultaneous hashes, one waits in the
        // queue and one is refused immediately.
        let metrics = Metrics::new();
        let hasher = PasswordHasher::new(&cfg(65_536, 4, 1, 1), &metrics).unwrap();
        let results = futures::future::join_all(
            (0..3).map(|_| hasher.hash(client(1), "correct horse".into())),
        )
        .await;
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(HashError::Busy { .. })))
            .count();
        assert!(refused >= 1, "{refused} refused");
        assert!(results.iter().any(Result::is_ok));
        assert!(
            metrics
                .render()
                .contains("identity_password_hash_rejected_total")
        );
    }

    #[test]
    fn one_client_holds_at_most_its_share_of_the_places() {
        // One thread and a queue of three: four places, a quarter of them (one) each.
        let config = PasswordConfig {
            hash_client_share: 25,
            ..cfg(8_192, 1, 1, 3)
        };
        let hasher = PasswordHasher::new(&config, &Metrics::new()).unwrap();
        let first = hasher.reserve(client(1)).unwrap();
        assert!(matches!(
            hasher.reserve(client(1)),
            Err(HashError::Busy { .. })
        ));
        let others: Vec<_> = (2..5).map(|n| hasher.reserve(client(n)).unwrap()).collect();
        // Every place taken: nobody else gets one, and readiness can tell.
        assert!(matches!(
            hasher.reserve(client(9)),
            Err(HashError::Busy { .. })
        ));
        let saturation = hasher.saturation();
        assert!(saturation.is_full() && saturation.last_full.is_some());
        drop(first);
        drop(others);
        assert_eq!(hasher.saturation().taken, 0);
        assert!(hasher.reserve(client(1)).is_ok());
    }
}

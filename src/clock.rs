//! Time, injected: every expiry and token-lifetime decision reads the clock it is given,
//! so tests move time forward instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, DurationRound, Utc};

pub trait Clock: Send + Sync + 'static {
    /// Now, to the microsecond: the precision PostgreSQL stores, so a time read back
    /// equals the time written.
    fn now(&self) -> DateTime<Utc>;
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

/// The real wall clock: the one place it is read (`clippy.toml` bans the readers
/// elsewhere). Decisions read time through a [`Clock`], so tests control them; this is
/// for what must follow real time whatever a test does, such as store-side TTLs in
/// Redis and housekeeping of in-memory maps.
#[expect(
    clippy::disallowed_methods,
    reason = "the single sanctioned reader of the wall clock"
)]
pub fn wall_now() -> DateTime<Utc> {
    Utc::now()
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        micros(wall_now())
    }
}

/// The wall clock plus an offset that can only grow: time keeps flowing and can also
/// jump forward on demand. Frozen, it stops flowing and moves only when advanced (for
/// tests that assert exact durations, which a busy machine would otherwise shorten).
#[derive(Debug)]
pub struct ManualClock {
    offset_ms: AtomicI64,
    /// Unix ms at which the clock stopped; negative: flowing.
    frozen_at_ms: AtomicI64,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            offset_ms: AtomicI64::new(0),
            frozen_at_ms: AtomicI64::new(-1),
        }
    }
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the clock at the current instant; `advance` still moves it.
    pub fn freeze(&self) {
        self.frozen_at_ms
            .store(wall_now().timestamp_millis(), Ordering::SeqCst);
    }

    /// Sets the offset from the wall clock, in milliseconds (tests may also break time:
    /// an offset beyond chrono's range makes `now` panic).
    pub fn set_offset_ms(&self, ms: i64) {
        self.offset_ms.store(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let frozen = self.frozen_at_ms.load(Ordering::SeqCst);
        let base = if frozen < 0 {
            wall_now()
        } else {
            DateTime::from_timestamp_millis(frozen).unwrap_or_else(wall_now)
        };
        micros(base + Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst)))
    }
}

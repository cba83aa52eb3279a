//! Exponential back-off: a wait of `base` that doubles with each step, up to `max`.
//! Login attempts and mail delivery retries both wait this way.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExponentialBackoff {
    pub base: Duration,
    pub max: Duration,
}

impl ExponentialBackoff {
    /// The wait at `step` (0-based): `base × 2^step`, at most `max`. Exact for every
    /// step, without overflow.
    pub fn delay(&self, step: u64) -> Duration {
        let base = self.base.as_nanos();
        if base == 0 {
            return Duration::ZERO;
        }
        let grown = u32::try_from(step)
            .ok()
            .and_then(|step| 2u128.checked_pow(step))
            .and_then(|factor| base.checked_mul(factor));
        match grown {
            Some(nanos) if nanos < self.max.as_nanos() => from_nanos(nanos),
            _ => self.max,
        }
    }
}

/// Below `Duration::MAX`, as every value smaller than a `Duration`'s nanoseconds is.
fn from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, subsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_max() {
        let b = ExponentialBackoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(600),
        };
        let delays: Vec<_> = (0..9).map(|step| b.delay(step).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
    }

    #[test]
    fn never_overflows() {
        let b = ExponentialBackoff {
            base: Duration::from_nanos(1),
            max: Duration::MAX,
        };
        assert_eq!(b.delay(10), Duration::from_nanos(1024));
        assert_eq!(b.delay(64), Duration::new(18_446_744_073, 709_551_616));
        for step in [95, 96, 127, 128, 1 << 32, u64::MAX] {
            assert_eq!(b.delay(step), Duration::MAX, "step {step}");
        }
        let b = ExponentialBackoff {
            base: Duration::MAX,
            max: Duration::from_secs(60),
        };
        assert_eq!(b.delay(0), Duration::from_secs(60));
        assert_eq!(b.delay(u64::MAX), Duration::from_secs(60));
        let b = ExponentialBackoff {
            base: Duration::ZERO,
            max: Duration::from_secs(60),
        };
        assert_eq!(b.delay(u64::MAX), Duration::ZERO);
    }
}

//! Exponential backoff with jitter for failing provider calls.

use std::time::Duration;

use rand::Rng;

/// Doubling delays from `base` up to `cap`, each drawn from the upper half of
/// its range so replicas failing together spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A fresh schedule.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next delay, never shorter than what the provider asked for.
    pub fn next(&mut self, at_least: Option<Duration>) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = exp.min(self.cap);
        let low = ceiling / 2;
        let jittered = if ceiling > low {
            rand::thread_rng().gen_range(low..=ceiling)
        } else {
            ceiling
        };
        jittered.max(at_least.unwrap_or_default())
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_bounds_and_honours_retry_after() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next(None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(b.next(None) <= Duration::from_secs(2));
        }
        assert_eq!(
            b.next(Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        b.reset();
        assert!(b.next(None) <= Duration::from_millis(100));
    }
}

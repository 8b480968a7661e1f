//! When to try a failed send again: exponential backoff with jitter that
//! never comes sooner than the provider's `Retry-After`.

use std::time::Duration;

use rand::Rng;

/// The delay after the `attempts`-th failed call (1-based): `base · 2^(n-1)`
/// capped at `max`, then jittered to between half and all of it (so
/// senders that failed together do not retry together), and never shorter
/// than `retry_after`.
pub fn retry_delay(
    attempts: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let full = base
        .saturating_mul(1u32 << exp)
        .min(max)
        .max(Duration::from_millis(1));
    let half = full / 2;
    let jitter = rand::thread_rng().gen_range(Duration::ZERO..=full - half);
    let delay = half + jitter;
    match retry_after {
        Some(wait) => delay.max(wait),
        None => delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for _ in 0..50 {
            let d1 = retry_delay(1, base, max, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= base, "{d1:?}");
            let d3 = retry_delay(3, base, max, None);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            let d20 = retry_delay(20, base, max, None);
            assert!(d20 >= Duration::from_secs(1) && d20 <= max, "{d20:?}");
        }
    }

    #[test]
    fn never_sooner_than_retry_after() {
        let d = retry_delay(
            1,
            Duration::from_millis(10),
            Duration::from_secs(1),
            Some(Duration::from_secs(7)),
        );
        assert_eq!(d, Duration::from_secs(7));
    }
}

//! When and how long to wait before trying a request again.

use std::time::Duration;

use rand::Rng;

/// How requests are retried after a temporary failure.
///
/// Reads (GET) and sends carrying an `Idempotency-Key` are retried on
/// connection errors, timeouts, 429, 503 and 504: the gateway answers a
/// repeated key with the first answer, so nothing is sent twice. Other
/// actions are retried only when the request provably never reached the
/// gateway (connection refused) or was refused unprocessed (429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time, with full jitter.
    pub base_delay: Duration,
    /// Longest delay between tries (a `Retry-After` may ask for more, up to
    /// [`RetryPolicy::max_retry_after`]).
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a longer one ends the retries.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The pause before retry number `retry` (1-based), or `None` when the
    /// server asked for a longer pause than this policy accepts.
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(wait) = retry_after {
            return (wait <= self.max_retry_after).then_some(wait);
        }
        Some(backoff(self.base_delay, self.max_delay, retry))
    }
}

/// Exponential backoff with full jitter: a random delay up to
/// `base * 2^(n-1)`, capped at `max`, never below a tenth of the base.
pub(crate) fn backoff(base: Duration, max: Duration, n: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << n.saturating_sub(1).min(16));
    let cap = exp.min(max);
    let floor = base / 10;
    let ms = cap.as_millis().max(floor.as_millis() + 1);
    let pick = rand::thread_rng().gen_range(floor.as_millis()..ms);
    Duration::from_millis(u64::try_from(pick).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for n in 1..40 {
            let d = backoff(base, max, n);
            assert!(d <= max, "{n}: {d:?}");
            assert!(d >= base / 10, "{n}: {d:?}");
            assert!(d <= base * 2u32.pow(n.min(10) - 1), "{n}: {d:?}");
        }
    }

    #[test]
    fn retry_after_wins_unless_too_long() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(3600))), None);
    }
}

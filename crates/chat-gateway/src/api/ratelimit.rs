//! Per-key token buckets (`rate_limit = { per_second, burst }`).

use std::sync::Mutex;
use std::time::Instant;

use axum::http::StatusCode;

use super::error::ApiError;
use crate::config::RateLimit;

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

/// One bucket per configured key (keys without a limit have none).
#[derive(Debug, Default)]
pub struct Limiter {
    buckets: Vec<Option<Mutex<Bucket>>>,
}

impl Limiter {
    /// Buckets for keys in configuration order, full at start.
    pub fn new(limits: impl IntoIterator<Item = Option<RateLimit>>) -> Self {
        let now = Instant::now();
        Limiter {
            buckets: limits
                .into_iter()
                .map(|l| {
                    l.map(|limit| {
                        Mutex::new(Bucket {
                            limit,
                            tokens: f64::from(limit.burst),
                            last: now,
                        })
                    })
                })
                .collect(),
        }
    }

    /// Takes one token for key `index`, or answers 429 with the seconds
    /// until one is available.
    pub fn check(&self, index: usize) -> Result<(), ApiError> {
        let Some(Some(bucket)) = self.buckets.get(index) else {
            return Ok(());
        };
        let mut b = match bucket.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * b.limit.per_second).min(f64::from(b.limit.burst));
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / b.limit.per_second).ceil().max(1.0) as u64;
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("Too many requests for this API key; retry in {wait} s."),
            )
            .with_retry_after(wait))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let l = Limiter::new([
            Some(RateLimit {
                per_second: 0.5,
                burst: 3,
            }),
            None,
        ]);
        for _ in 0..3 {
            l.check(0).unwrap();
        }
        let e = l.check(0).unwrap_err();
        assert_eq!(e.code, "rate_limited");
        assert_eq!(e.retry_after, Some(2));
        for _ in 0..100 {
            l.check(1).unwrap();
        }
    }
}

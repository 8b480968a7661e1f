//! Per-key token buckets (`rate_limit = { per_second, burst }`).

use std::sync::Mutex;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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

    /// Takes one token for key `index`. `Ok(None)` for a key without a
    /// limit; `Ok(Some(quota))` when allowed; a 429 carrying the quota and
    /// `Retry-After` when not.
    pub fn check(&self, index: usize) -> Result<Option<Quota>, Box<Refused>> {
        let Some(Some(bucket)) = self.buckets.get(index) else {
            return Ok(None);
        };
        let mut b = match bucket.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        let burst = f64::from(b.limit.burst);
        b.tokens = (b.tokens + elapsed * b.limit.per_second).min(burst);
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        let quota = Quota {
            limit: b.limit.burst,
            remaining: b.tokens.floor().max(0.0) as u32,
            reset_secs: ((burst - b.tokens) / b.limit.per_second).ceil().max(0.0) as u64,
        };
        if allowed {
            return Ok(Some(quota));
        }
        let wait = ((1.0 - b.tokens) / b.limit.per_second).ceil().max(1.0) as u64;
        Err(Box::new(Refused {
            error: ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("Too many requests for this API key; retry in {wait} s."),
            )
            .with_retry_after(wait),
            quota: Quota {
                remaining: 0,
                ..quota
            },
        }))
    }
}

/// What a rate-limited key is told on every response, so clients can pace
/// themselves instead of discovering the limit through 429s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// `RateLimit-Limit`: the key's `burst`.
    pub limit: u32,
    /// `RateLimit-Remaining`: whole requests the key may make right now.
    pub remaining: u32,
    /// `RateLimit-Reset`: whole seconds until the bucket is full again.
    pub reset_secs: u64,
}

impl Quota {
    /// Writes the three `RateLimit-*` headers onto `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(self.reset_secs));
    }
}

/// A refused request: the 429 to answer and the quota to report with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The 429 `rate_limited` error, with `Retry-After`.
    pub error: ApiError,
    /// The key's quota (`remaining` is 0).
    pub quota: Quota,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut resp = self.error.into_response();
        self.quota.apply(resp.headers_mut());
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_retry_after_and_quota() {
        let l = Limiter::new([
            Some(RateLimit {
                per_second: 0.5,
                burst: 3,
            }),
            None,
        ]);
        let first = l.check(0).unwrap().unwrap();
        assert_eq!(first.limit, 3);
        assert_eq!(first.remaining, 2);
        // One token spent at 0.5/s: two seconds until full.
        assert_eq!(first.reset_secs, 2);
        assert_eq!(l.check(0).unwrap().unwrap().remaining, 1);
        let last = l.check(0).unwrap().unwrap();
        assert_eq!(last.remaining, 0);
        assert_eq!(last.reset_secs, 6);
        let refused = l.check(0).unwrap_err();
        assert_eq!(refused.error.code, "rate_limited");
        assert_eq!(refused.error.retry_after, Some(2));
        assert_eq!(refused.quota.remaining, 0);
        assert_eq!(refused.quota.limit, 3);
        for _ in 0..100 {
            assert_eq!(l.check(1).unwrap(), None);
        }
    }
}

//! HTTP helpers every adapter needs when a call fails, written once.
//!
//! Adapters differ in their error bodies, not in how an HTTP failure is
//! read: a status becomes a [`ProviderError`] by the same rules, a
//! `Retry-After` comes as seconds or as an HTTP date, a transport error is
//! only useful with its causes, and a body without a reason is quoted
//! briefly. Each adapter still owns the one function that maps its own
//! failures; these are its building blocks. Nothing here depends on an
//! HTTP client crate, so adapters may use any.

use std::fmt::Display;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ProviderError;

/// Most of an error body worth quoting back to the API caller.
pub const QUOTED_BODY_CHARS: usize = 300;

/// An error and its causes on one line (HTTP clients hide the cause, which
/// is usually the useful part: "connection refused", "dns error").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// A `Retry-After` value as a delay: whole seconds, or an HTTP date
/// (a date already past is no delay); `None` when absent or unreadable.
pub fn retry_after(value: Option<&str>, now: DateTime<Utc>) -> Option<Duration> {
    let value = value?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The reason to report for a failed answer: the provider's own words when
/// its body gave some, else the status and the start of the body, else the
/// status alone.
pub fn reason_text(status: impl Display, provider_reason: Option<String>, body: &str) -> String {
    if let Some(reason) = provider_reason.filter(|r| !r.trim().is_empty()) {
        return reason;
    }
    let quoted: String = body.trim().chars().take(QUOTED_BODY_CHARS).collect();
    if quoted.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {quoted}")
    }
}

/// The usual reading of a non-2xx status: 401/403 `Unauthorized` (the
/// caller has already retried once with refreshed credentials), 404
/// `NotFound`, 408 `Timeout`, 429 `RateLimited`, other 4xx `Rejected`
/// with the provider's code and reason, anything else `Unavailable`
/// naming the provider. An adapter handles its exceptions before calling
/// this.
pub fn status_error(
    provider: &str,
    status: impl Display + Copy,
    status_code: u16,
    code: Option<String>,
    reason: String,
    retry_after: Option<Duration>,
) -> ProviderError {
    match status_code {
        401 | 403 => ProviderError::Unauthorized(reason),
        404 => ProviderError::NotFound(reason),
        408 => ProviderError::Timeout,
        429 => ProviderError::RateLimited { retry_after },
        400..=499 => ProviderError::Rejected {
            code,
            message: reason,
        },
        _ => ProviderError::Unavailable(format!("{provider} answered {status}: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            retry_after(Some(" 12 "), now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(Some("soon"), now), None);
        assert_eq!(retry_after(None, now), None);
    }

    #[test]
    fn reasons_fall_back_to_the_status_and_body() {
        assert_eq!(
            reason_text("400 Bad Request", Some("bad app".into()), "{}"),
            "bad app"
        );
        assert_eq!(
            reason_text("404 Not Found", None, " nope "),
            "404 Not Found: nope"
        );
        assert_eq!(reason_text("502 Bad Gateway", None, ""), "502 Bad Gateway");
        let long = "x".repeat(1000);
        assert_eq!(
            reason_text("500", None, &long).len(),
            "500: ".len() + QUOTED_BODY_CHARS
        );
    }

    #[test]
    fn statuses_map_to_what_the_caller_does_next() {
        let e = |s: u16| status_error("p", s, s, Some("c".into()), "why".into(), None);
        assert_eq!(e(401), ProviderError::Unauthorized("why".into()));
        assert_eq!(e(403), ProviderError::Unauthorized("why".into()));
        assert_eq!(e(404), ProviderError::NotFound("why".into()));
        assert_eq!(e(408), ProviderError::Timeout);
        assert_eq!(e(429), ProviderError::RateLimited { retry_after: None });
        assert!(matches!(e(400), ProviderError::Rejected { code: Some(c), .. } if c == "c"));
        assert_eq!(
            e(503),
            ProviderError::Unavailable("p answered 503: why".into())
        );
    }

    #[test]
    fn error_chains_name_every_cause() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("request failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&e), "request failed: connection refused");
    }
}

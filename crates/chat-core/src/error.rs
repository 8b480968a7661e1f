//! The one error type every adapter returns, sorted by what the caller does next.
//!
//! Each adapter maps its wire failures into [`ProviderError`] in exactly one
//! function; the gateway never looks at provider status codes itself. The kinds
//! decide between: show the provider's reason to the caller (`Rejected`), retry
//! later (`RateLimited`, `Timeout`, `Unavailable`), fix configuration
//! (`Unauthorized`), skip the data (`BadData`) or restart a resume cursor
//! (`CursorExpired`).

use std::time::Duration;

/// A provider call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider understood the request and refused it; `message` is its
    /// reason, shown to the API caller as 422 `provider_rejected`.
    #[error("provider rejected the request: {message}")]
    Rejected {
        /// The provider's own error code, when it has one.
        code: Option<String>,
        /// The provider's reason, in its words.
        message: String,
    },
    /// Our credentials were refused even after a refresh.
    #[error("provider refused the credentials: {0}")]
    Unauthorized(String),
    /// Too many requests; wait `retry_after` when the provider says.
    #[error("provider rate limit reached")]
    RateLimited {
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// No answer within the call's time budget.
    #[error("provider did not answer in time")]
    Timeout,
    /// Connection failure or a 5xx: worth retrying.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The answer could not be read (malformed JSON, missing required fields).
    #[error("provider sent unreadable data: {0}")]
    BadData(String),
    /// A resume point (Spark version) is too old or unknown: start afresh.
    #[error("provider no longer knows the resume point: {0}")]
    CursorExpired(String),
    /// The object asked for does not exist at the provider.
    #[error("provider has no such object: {0}")]
    NotFound(String),
    /// The adapter does not implement this operation.
    #[error("provider does not support {0}")]
    Unsupported(&'static str),
}

/// The kind of a [`ProviderError`], as a metrics label and for matching
/// without the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// See [`ProviderError::Rejected`].
    Rejected,
    /// See [`ProviderError::Unauthorized`].
    Unauthorized,
    /// See [`ProviderError::RateLimited`].
    RateLimited,
    /// See [`ProviderError::Timeout`].
    Timeout,
    /// See [`ProviderError::Unavailable`].
    Unavailable,
    /// See [`ProviderError::BadData`].
    BadData,
    /// See [`ProviderError::CursorExpired`].
    CursorExpired,
    /// See [`ProviderError::NotFound`].
    NotFound,
    /// See [`ProviderError::Unsupported`].
    Unsupported,
}

impl ProviderErrorKind {
    /// Snake-case label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderErrorKind::Rejected => "rejected",
            ProviderErrorKind::Unauthorized => "unauthorized",
            ProviderErrorKind::RateLimited => "rate_limited",
            ProviderErrorKind::Timeout => "timeout",
            ProviderErrorKind::Unavailable => "unavailable",
            ProviderErrorKind::BadData => "bad_data",
            ProviderErrorKind::CursorExpired => "cursor_expired",
            ProviderErrorKind::NotFound => "not_found",
            ProviderErrorKind::Unsupported => "unsupported",
        }
    }
}

impl ProviderError {
    /// The payload-free kind.
    pub fn kind(&self) -> ProviderErrorKind {
        match self {
            ProviderError::Rejected { .. } => ProviderErrorKind::Rejected,
            ProviderError::Unauthorized(_) => ProviderErrorKind::Unauthorized,
            ProviderError::RateLimited { .. } => ProviderErrorKind::RateLimited,
            ProviderError::Timeout => ProviderErrorKind::Timeout,
            ProviderError::Unavailable(_) => ProviderErrorKind::Unavailable,
            ProviderError::BadData(_) => ProviderErrorKind::BadData,
            ProviderError::CursorExpired(_) => ProviderErrorKind::CursorExpired,
            ProviderError::NotFound(_) => ProviderErrorKind::NotFound,
            ProviderError::Unsupported(_) => ProviderErrorKind::Unsupported,
        }
    }

    /// Whether trying the same call again later may succeed. Sends are
    /// retried only on these; rejections and bad credentials are final.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Timeout
                | ProviderError::Unavailable(_)
                | ProviderError::BadData(_)
        )
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        assert!(ProviderError::Timeout.is_retryable());
        assert!(ProviderError::Unavailable("503".into()).is_retryable());
        assert!(ProviderError::RateLimited { retry_after: None }.is_retryable());
        assert!(!ProviderError::Rejected {
            code: Some("1002".into()),
            message: "agent offline".into()
        }
        .is_retryable());
        assert!(!ProviderError::Unauthorized("bad key".into()).is_retryable());
        assert!(!ProviderError::CursorExpired("1004".into()).is_retryable());
    }

    #[test]
    fn retry_after_is_carried_only_by_rate_limits() {
        let e = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(e.kind().as_str(), "rate_limited");
        assert_eq!(ProviderError::Timeout.retry_after(), None);
    }
}

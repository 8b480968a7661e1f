//! Wire failures and the one function that turns them into [`ProviderError`].

use std::time::Duration;

use chat_core::ProviderError;

use crate::reading::{self, CodeMeaning};

/// Something that went wrong on the way to or from Spark, before it is
/// sorted into what the caller does next.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The call never produced a full answer: connect error, reset, timeout.
    Transport(reqwest::Error),
    /// Spark answered with a failure: a non-2xx status, or a 2xx whose
    /// `Code` is not 0.
    Answer {
        /// The HTTP status.
        status: u16,
        /// The body's `Code`, when it could be read.
        code: Option<i64>,
        /// The body's `Message`, or the start of an unreadable body.
        message: Option<String>,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// A 2xx answer that could not be read (not JSON, required parts missing).
    Unreadable(String),
    /// A send that Spark cannot carry as asked (kind, missing content, too long).
    Invalid {
        /// Machine-readable reason.
        code: &'static str,
        /// For the caller.
        message: String,
    },
}

/// The one place Spark failures become [`ProviderError`]s.
///
/// HTTP 401 or `Code` 401: `Unauthorized`. 429: `RateLimited` with its
/// `Retry-After`. Timeouts (ours, or a 408): `Timeout`. 5xx and transport
/// failures: `Unavailable`. A readable `Code` (on a 4xx or a 200): 1004
/// `CursorExpired`, every other code (1001, 1002, 1003, unknown ones)
/// `Rejected` carrying Spark's `Message`. Another 4xx: `Rejected` with code
/// `http_<status>`. Unreadable 2xx bodies: `BadData`.
pub(crate) fn provider_error(failure: Failure) -> ProviderError {
    match failure {
        Failure::Transport(e) if e.is_timeout() => ProviderError::Timeout,
        Failure::Transport(e) => ProviderError::Unavailable(describe_transport(e)),
        Failure::Answer {
            status,
            code,
            message,
            retry_after,
        } => {
            let meaning = code.map(reading::code_meaning);
            let said = |fallback: String| message.clone().unwrap_or(fallback);
            if status == 401 || meaning == Some(CodeMeaning::Unauthorized) {
                return ProviderError::Unauthorized(said(format!("HTTP {status}")));
            }
            if status == 429 {
                return ProviderError::RateLimited { retry_after };
            }
            if status == 408 {
                return ProviderError::Timeout;
            }
            if status >= 500 {
                return ProviderError::Unavailable(match message {
                    Some(m) => format!("HTTP {status}: {m}"),
                    None => format!("HTTP {status}"),
                });
            }
            match (code, meaning) {
                (Some(code), Some(CodeMeaning::CursorExpired)) => {
                    ProviderError::CursorExpired(said(format!("Spark code {code}")))
                }
                (Some(code), _) => ProviderError::Rejected {
                    code: Some(code.to_string()),
                    message: said(format!("Spark code {code}")),
                },
                (None, _) => ProviderError::Rejected {
                    code: Some(format!("http_{status}")),
                    message: said(format!("HTTP {status}")),
                },
            }
        }
        Failure::Unreadable(why) => ProviderError::BadData(why),
        Failure::Invalid { code, message } => ProviderError::Rejected {
            code: Some(code.to_string()),
            message,
        },
    }
}

/// A transport error with its causes, without the URL.
fn describe_transport(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, code: Option<i64>, message: Option<&str>) -> ProviderError {
        provider_error(Failure::Answer {
            status,
            code,
            message: message.map(str::to_string),
            retry_after: None,
        })
    }

    #[test]
    fn every_documented_code_has_its_kind() {
        for code in [1001, 1002, 1003] {
            assert_eq!(
                answer(200, Some(code), Some("why")),
                ProviderError::Rejected {
                    code: Some(code.to_string()),
                    message: "why".into()
                }
            );
        }
        assert_eq!(
            answer(200, Some(1004), Some("old")),
            ProviderError::CursorExpired("old".into())
        );
        assert_eq!(
            answer(200, Some(401), Some("bad key")),
            ProviderError::Unauthorized("bad key".into())
        );
        assert_eq!(
            answer(200, Some(7777), None),
            ProviderError::Rejected {
                code: Some("7777".into()),
                message: "Spark code 7777".into()
            }
        );
    }

    #[test]
    fn statuses_win_over_codes_where_they_decide_retrying() {
        assert_eq!(
            answer(401, None, None),
            ProviderError::Unauthorized("HTTP 401".into())
        );
        assert!(answer(503, Some(1001), Some("busy")).is_retryable());
        assert_eq!(answer(408, None, None), ProviderError::Timeout);
        assert_eq!(
            provider_error(Failure::Answer {
                status: 429,
                code: None,
                message: None,
                retry_after: Some(Duration::from_secs(3)),
            })
            .retry_after(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            answer(400, Some(1003), Some("bad ToId")),
            ProviderError::Rejected {
                code: Some("1003".into()),
                message: "bad ToId".into()
            }
        );
        assert_eq!(
            answer(404, None, None),
            ProviderError::Rejected {
                code: Some("http_404".into()),
                message: "HTTP 404".into()
            }
        );
    }

    #[test]
    fn unreadable_answers_are_retryable_bad_data() {
        let e = provider_error(Failure::Unreadable("not JSON".into()));
        assert!(matches!(e, ProviderError::BadData(_)));
        assert!(e.is_retryable());
    }
}

//! What can go wrong, typed so callers act on the kind rather than on text.
//!
//! Policy: an answer from the gateway with a non-2xx status becomes
//! [`Error::Api`] carrying the decoded `error.code`, the message, the
//! request id and any `Retry-After`; everything that never produced such an
//! answer (connection refused, timeout, unreadable body) has its own variant.

use std::time::Duration;

use reqwest::StatusCode;

use crate::types::wire_enum;

wire_enum! {
    /// `error.code` of the API's error envelope (API.md "Error codes").
    pub enum ErrorCode {
        /// 400: malformed JSON, unknown field, bad query value, bad cursor.
        InvalidRequest = "invalid_request",
        /// 401: missing or unknown API key.
        Unauthorized = "unauthorized",
        /// 403: the key lacks the scope.
        Forbidden = "forbidden",
        /// 404: no such object, or one the key may not see.
        NotFound = "not_found",
        /// 409: the action is not valid in the session's state.
        InvalidState = "invalid_state",
        /// 409: outreach without `confirm_new_session: true`.
        ConfirmationRequired = "confirmation_required",
        /// 408: the request body did not arrive in time.
        RequestTimeout = "request_timeout",
        /// 410: event cursor older than the retention window.
        CursorExpired = "cursor_expired",
        /// 413: body over 1 MiB.
        PayloadTooLarge = "payload_too_large",
        /// 422: the account's provider lacks that capability.
        UnsupportedOperation = "unsupported_operation",
        /// 422: content kind the provider cannot send.
        UnsupportedContent = "unsupported_content",
        /// 422: text over the provider's limit.
        ContentTooLong = "content_too_long",
        /// 422: same `Idempotency-Key`, different body.
        IdempotencyKeyReused = "idempotency_key_reused",
        /// 422: the provider refused; the message says why.
        ProviderRejected = "provider_rejected",
        /// 429: slow down; see `retry_after`.
        RateLimited = "rate_limited",
        /// 502: the provider failed.
        ProviderError = "provider_error",
        /// 503: database down or shutting down.
        Unavailable = "unavailable",
        /// 504: the provider did not answer in time.
        ProviderTimeout = "provider_timeout",
    }
}

/// An error answer of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// `error.code`; [`ErrorCode::Other`] when the body had none we know
    /// (a proxy's HTML page, say), holding the status's reason then.
    pub code: ErrorCode,
    /// `error.message`, a human sentence.
    pub message: String,
    /// `error.request_id`, else the `x-request-id` header: quote it when
    /// asking the gateway's operators.
    pub request_id: Option<String>,
    /// `Retry-After`, when the gateway asked for a pause (429, 503).
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if let Some(id) = &self.request_id {
            write!(f, " (request {id})")?;
        }
        Ok(())
    }
}

/// Every failure of a client call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The gateway answered with an error status.
    #[error("gateway answered {0}")]
    Api(Box<ApiError>),
    /// No answer: connection refused or reset, timeout, TLS failure.
    #[error("request to the gateway failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// A 2xx answer whose body is not what the API describes.
    #[error("unreadable answer from the gateway: {0}")]
    Decode(String),
    /// The base URL or a path built from the arguments is not a valid URL.
    #[error("invalid URL: {0}")]
    Url(#[from] url::ParseError),
}

impl Error {
    /// The API error, when the gateway answered one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The error code, when the gateway answered one.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.api().map(|e| &e.code)
    }

    /// Whether trying the same request again later may succeed without
    /// any change: no answer at all, 429, 502, 503 or 504.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Api(e) => matches!(e.status.as_u16(), 429 | 502 | 503 | 504),
            Error::Transport(e) => e.is_connect() || e.is_timeout() || e.is_request(),
            _ => false,
        }
    }
}

/// Convenience alias for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads `Retry-After` in its delay-seconds form (the gateway's).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Builds the typed error from an error answer's parts.
pub(crate) fn from_answer(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> ApiError {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        request_id: Option<String>,
    }
    let header_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => ApiError {
            status,
            code: ErrorCode::from(env.error.code.as_str()),
            message: env.error.message,
            request_id: env.error.request_id.or(header_id),
            retry_after: retry_after(headers),
        },
        Err(_) => ApiError {
            status,
            code: ErrorCode::Other(
                status
                    .canonical_reason()
                    .unwrap_or("unknown")
                    .to_lowercase()
                    .replace(' ', "_"),
            ),
            message: String::from_utf8_lossy(body).chars().take(500).collect(),
            request_id: header_id,
            retry_after: retry_after(headers),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_decoded_by_code_with_retry_after() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        headers.insert("x-request-id", "hdr".parse().unwrap());
        let body = br#"{"error":{"code":"rate_limited","message":"slow down","request_id":"r-1"}}"#;
        let e = from_answer(StatusCode::TOO_MANY_REQUESTS, &headers, body);
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(e.message, "slow down");
        assert_eq!(e.request_id.as_deref(), Some("r-1"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    }

    #[test]
    fn unknown_codes_and_foreign_bodies_fall_back_to_other() {
        let headers = reqwest::header::HeaderMap::new();
        let e = from_answer(
            StatusCode::IM_A_TEAPOT,
            &headers,
            br#"{"error":{"code":"brand_new","message":"m"}}"#,
        );
        assert_eq!(e.code, ErrorCode::Other("brand_new".into()));
        let e = from_answer(StatusCode::BAD_GATEWAY, &headers, b"<html>nginx</html>");
        assert_eq!(e.code, ErrorCode::Other("bad_gateway".into()));
        assert_eq!(e.message, "<html>nginx</html>");
        assert_eq!(e.request_id, None);
    }
}

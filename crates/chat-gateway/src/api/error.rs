//! The API's one error shape: status + `{"error": {code, message, request_id}}`.
//!
//! Handlers return [`ApiError`]; internal failures are logged once here with
//! the request id and never described to the client beyond their kind.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware so errors
    /// raised anywhere in the handler can carry it.
    pub static REQUEST_ID: String;
}

/// The current request's id, or empty outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// An error answer. `code` is one of the contract's snake-case codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human sentence.
    pub message: String,
    /// Seconds for `Retry-After`, on 429 and some 503s.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request itself is malformed.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401: no or unknown API key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the key lacks the scope.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such object (or not visible to this key).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such {what}."),
        )
    }

    /// 409: the action does not fit the object's state.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "invalid_state", message)
    }

    /// 503: the database (or the gateway) cannot serve now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: a bug; the details go to the log, not the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side; the request id identifies it in our logs.",
        )
    }

    /// Adds `Retry-After`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("object"),
            StoreError::Invalid(m) => ApiError::invalid_request(m),
            StoreError::CursorExpired => ApiError::new(
                StatusCode::GONE,
                "cursor_expired",
                "This event cursor is older than the retention window; start again with after=0.",
            ),
            StoreError::Database(e) => {
                tracing::error!(error = %e, "database error");
                ApiError::unavailable("The database is not answering; try again shortly.")
                    .with_retry_after(1)
            }
            StoreError::LeaseLost => ApiError::unavailable("Sync ownership moved; try again."),
            StoreError::Corrupt(m) => {
                tracing::error!(problem = %m, "unreadable stored value");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "request_id": current_request_id(),
        }});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        resp
    }
}

//! Raw Kchat calls (chat list, chat detail), their private wire types, and
//! [`provider_error`], the one place a failed call becomes a
//! [`ProviderError`].
//!
//! Every call carries HTTP Basic auth, marked sensitive by reqwest so it
//! never shows in debug output; the password or token is never logged.

use std::time::Duration;

use chat_core::{wire, ProviderError, Secret};
use chrono::{NaiveDate, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::config::KchatConfig;

/// Chats asked for per list page: the API's maximum.
pub(crate) const PER_PAGE: u32 = 100;

/// Why a call did not produce an answer; turned into a [`ProviderError`]
/// only by [`provider_error`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// Connection failure, timeout, or a body that could not be received.
    Transport(reqwest::Error),
    /// A non-2xx answer.
    Status {
        status: StatusCode,
        body: String,
        retry_after: Option<Duration>,
    },
    /// An answer (or a page token) that is not what the API describes.
    Unreadable(String),
    /// A request that cannot be made as asked.
    Input(String),
    /// The HTTP client could not be built or the base URL cannot take paths.
    Setup(String),
}

impl Failure {
    /// A 404: the chat does not exist (any more).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Failure::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// The one mapping from a failed call to the error the gateway acts on.
///
/// 401 -> `Unauthorized`; 403 -> `Rejected`; 404 -> `NotFound`; 408 -> `Timeout`; 429 -> `RateLimited` with the
/// `Retry-After` delay; other 4xx -> `Rejected` with the body's `error` and
/// `message`; 5xx and connection failures -> `Unavailable`; timeouts ->
/// `Timeout`; unreadable answers and foreign `next_page` links -> `BadData`.
pub(crate) fn provider_error(failure: Failure) -> ProviderError {
    match failure {
        Failure::Transport(e) if e.is_timeout() => ProviderError::Timeout,
        Failure::Transport(e) => {
            ProviderError::Unavailable(format!("kchat request failed: {}", wire::error_chain(&e)))
        }
        Failure::Status {
            status,
            body,
            retry_after,
        } => {
            let (code, reason) = error_reason(status, &body);
            match status.as_u16() {
                // A 403 is a permission the agent lacks for this request,
                // not a credential to refresh.
                403 => ProviderError::Rejected {
                    code,
                    message: reason,
                },
                n => wire::status_error("kchat", status, n, code, reason, retry_after),
            }
        }
        Failure::Unreadable(what) => ProviderError::BadData(what),
        Failure::Input(what) => ProviderError::Rejected {
            code: None,
            message: what,
        },
        Failure::Setup(what) => ProviderError::Unavailable(what),
    }
}

/// `{"error": 40100, "message": "…"}` to code and reason, else the status
/// text and the start of the body.
fn error_reason(status: StatusCode, body: &str) -> (Option<String>, String) {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = match parsed.get("error") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    };
    let message = match parsed.get("message") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    (code, wire::reason_text(status, message, body))
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    wire::retry_after(
        headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()),
        Utc::now(),
    )
}

/// One page of the chat list, items still raw.
#[derive(Debug)]
pub(crate) struct ChatList {
    /// Chat summaries in provider order.
    pub chats: Vec<Value>,
    /// Total matching chats.
    pub count: Option<u64>,
    /// Absolute URL of the next page.
    pub next_page: Option<String>,
}

/// The HTTP side of the adapter: one `reqwest::Client` and the sign-in.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    base_url: Url,
    user: String,
    password: Secret,
}

impl Client {
    /// Builds the one HTTP client, with the account's timeout on every call.
    pub(crate) fn new(config: &KchatConfig) -> Result<Self, Failure> {
        if config.base_url.cannot_be_a_base() {
            return Err(Failure::Setup(format!(
                "base_url `{}` cannot take API paths",
                config.base_url
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .user_agent(concat!("chat-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Failure::Setup(format!(
                    "cannot build the HTTP client: {}",
                    wire::error_chain(&e)
                ))
            })?;
        let (user, password) = config.credential.basic_auth(&config.email);
        Ok(Client {
            http,
            base_url: config.base_url.clone(),
            user,
            password: password.clone(),
        })
    }

    /// `base_url` with `segments` appended (each percent-encoded).
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The first list page of chats created from `start` to `end`
    /// (account-zone dates, inclusive), optionally of one visitor.
    pub(crate) fn chats_url(
        &self,
        start: NaiveDate,
        end: NaiveDate,
        visitor_id: Option<&str>,
    ) -> Url {
        let mut url = self.endpoint(&["apiv2", "chats.json"]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("start", &start.format("%Y-%m-%d").to_string())
                .append_pair("end", &end.format("%Y-%m-%d").to_string())
                .append_pair("per_page", &PER_PAGE.to_string());
            if let Some(visitor_id) = visitor_id {
                query.append_pair("visitor_id", visitor_id);
            }
        }
        url
    }

    /// A `next_page` link handed back earlier, refused unless it points at
    /// the configured origin (the credentials go wherever it points).
    pub(crate) fn page_url(&self, token: &str) -> Result<Url, Failure> {
        let url = Url::parse(token.trim())
            .map_err(|e| Failure::Unreadable(format!("page token is not a URL: {e}")))?;
        if url.origin() != self.base_url.origin() {
            return Err(Failure::Unreadable(format!(
                "next_page points at {}, not at the account's {}",
                url.origin().ascii_serialization(),
                self.base_url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// One chat list page.
    pub(crate) async fn list(&self, url: Url) -> Result<ChatList, Failure> {
        let answer = self.get_json(url, "chat list").await?;
        let chats = match answer.get("chats") {
            Some(Value::Array(chats)) => chats.clone(),
            Some(Value::Null) => Vec::new(),
            _ => {
                return Err(Failure::Unreadable(
                    "chat list answer has no `chats` list".into(),
                ))
            }
        };
        let count = match answer.get("count") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let next_page = answer
            .get("next_page")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        Ok(ChatList {
            chats,
            count,
            next_page,
        })
    }

    /// One chat with its messages: the `chat` object of the answer.
    pub(crate) async fn chat(&self, id: &str) -> Result<Value, Failure> {
        let id = id.trim();
        if id.is_empty() {
            return Err(Failure::Input("a Kchat chat id is required".into()));
        }
        let url = self.endpoint(&["apiv2", "chats", &format!("{id}.json")]);
        let mut answer = self.get_json(url, "chat detail").await?;
        match answer.get_mut("chat").map(Value::take) {
            Some(chat @ Value::Object(_)) => Ok(chat),
            _ => Err(Failure::Unreadable(
                "chat detail answer has no `chat` object".into(),
            )),
        }
    }

    /// GET with Basic auth; a 2xx body as JSON.
    async fn get_json(&self, url: Url, what: &str) -> Result<Value, Failure> {
        let response = self
            .http
            .get(url)
            .basic_auth(&self.user, Some(self.password.expose()))
            .send()
            .await
            .map_err(Failure::Transport)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(Failure::Transport)?;
        if !status.is_success() {
            return Err(Failure::Status {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
                retry_after,
            });
        }
        serde_json::from_slice(&body)
            .map_err(|e| Failure::Unreadable(format!("{what} answer is not JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn error_bodies_give_code_and_reason() {
        let (code, reason) = error_reason(
            StatusCode::FORBIDDEN,
            r#"{"error": 40300, "message": "no access"}"#,
        );
        assert_eq!(code.as_deref(), Some("40300"));
        assert_eq!(reason, "no access");
        let (code, reason) = error_reason(StatusCode::BAD_GATEWAY, "");
        assert_eq!(code, None);
        assert_eq!(reason, "502 Bad Gateway");
    }
}

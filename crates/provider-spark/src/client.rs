//! Raw Spark calls and the private wire types.
//!
//! Every call is `POST {base_url}{path}` with a JSON body and the account's
//! extra headers. Answers are read as loose JSON ([`serde_json::Value`]) and
//! picked apart field by field with lenient readers, so one odd field costs
//! one item, never a whole answer.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde_json::Value;

use crate::config::{ConfigError, SparkConfig};
use crate::error::Failure;
use crate::reading;

/// Longest part of an unreadable body quoted in an error.
const BODY_SNIPPET_CHARS: usize = 200;

/// `POST /message/query`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueryRequest<'a> {
    /// Empty for live messages, else the version to replay history after.
    pub(crate) last_version: &'a str,
    /// Comma-separated message ids stored since the last query.
    pub(crate) acks: &'a str,
}

/// `POST /message/send`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SendBody {
    /// Empty to start a new session (outreach).
    pub(crate) session_id: String,
    /// The customer.
    pub(crate) to_id: String,
    /// `"0"` text, `"1"` image.
    pub(crate) content_type: &'static str,
    /// The text, or the image URL.
    pub(crate) content: String,
    /// `yyyy-MM-dd HH:mm:ss` in the account's zone.
    pub(crate) create_time: String,
}

/// `POST /session/close` and `/session/restart`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SessionBody<'a> {
    session_id: &'a str,
}

/// `POST /session/transfer`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TransferBody<'a> {
    session_id: &'a str,
    to_new_id: &'a str,
}

/// What a lenient reader found under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Field<T> {
    /// Missing or `null` (or an empty string where a number was expected).
    Absent,
    /// Readable.
    Present(T),
    /// There, but of a type that cannot be read as `T`.
    Wrong,
}

impl<T> Field<T> {
    /// The value when present, else `None` (absent and wrong alike).
    pub(crate) fn ok(self) -> Option<T> {
        match self {
            Field::Present(v) => Some(v),
            _ => None,
        }
    }
}

/// Reads `key` as a string; numbers are accepted and written out.
pub(crate) fn string_field(obj: &Value, key: &str) -> Field<String> {
    match obj.get(key) {
        None | Some(Value::Null) => Field::Absent,
        Some(Value::String(s)) => Field::Present(s.clone()),
        Some(Value::Number(n)) => Field::Present(n.to_string()),
        Some(_) => Field::Wrong,
    }
}

/// Reads `key` as an integer; integral floats and numeric strings are
/// accepted.
pub(crate) fn int_field(obj: &Value, key: &str) -> Field<i64> {
    match obj.get(key) {
        None | Some(Value::Null) => Field::Absent,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Field::Present(i),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Field::Present(f as i64),
                _ => Field::Wrong,
            },
        },
        Some(Value::String(s)) if s.trim().is_empty() => Field::Absent,
        Some(Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(i) => Field::Present(i),
            Err(_) => Field::Wrong,
        },
        Some(_) => Field::Wrong,
    }
}

/// The HTTP side of one Spark account: one `reqwest::Client` with the
/// account's headers and timeouts.
pub(crate) struct SparkClient {
    http: reqwest::Client,
    base_url: String,
    /// The parsed root, against which relative links in answers resolve.
    base: url::Url,
    poll_http_timeout: Duration,
}

impl fmt::Debug for SparkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The reqwest client holds the credential headers: never printed.
        f.debug_struct("SparkClient")
            .field("base_url", &self.base_url)
            .field("poll_http_timeout", &self.poll_http_timeout)
            .finish_non_exhaustive()
    }
}

impl SparkClient {
    /// Checks the configuration and builds the HTTP client.
    pub(crate) fn new(config: &SparkConfig) -> Result<Self, ConfigError> {
        let url = url::Url::parse(&config.base_url).map_err(|e| ConfigError::BaseUrl {
            url: config.base_url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::BaseUrl {
                url: config.base_url.clone(),
                reason: format!("scheme `{}` is not http or https", url.scheme()),
            });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::BaseUrl {
                url: config.base_url.clone(),
                reason: "a query or fragment cannot be followed by a path".into(),
            });
        }
        for (name, value) in [
            ("poll_timeout", config.poll_timeout),
            ("request_timeout", config.request_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }

        let mut headers = HeaderMap::new();
        for (name, secret) in &config.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigError::HeaderName(name.clone()))?;
            let mut header_value = HeaderValue::from_str(secret.expose())
                .map_err(|_| ConfigError::HeaderValue(name.clone()))?;
            header_value.set_sensitive(true);
            headers.append(header_name, header_value);
        }

        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            // A redirected POST would lose its body: a 3xx is reported instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("provider-spark/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;

        Ok(SparkClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            base: url,
            poll_http_timeout: config.poll_timeout.saturating_add(config.poll_margin),
        })
    }

    /// The account's API root, against which relative links resolve.
    pub(crate) fn base(&self) -> &url::Url {
        &self.base
    }

    /// `POST /message/query`, held up to the poll timeout plus its margin.
    pub(crate) async fn query(&self, body: &QueryRequest<'_>) -> Result<Value, Failure> {
        self.post(reading::PATH_QUERY, body, Some(self.poll_http_timeout))
            .await
    }

    /// `POST /message/send`; the answer is returned for the receipt.
    pub(crate) async fn send(&self, body: &SendBody) -> Result<Value, Failure> {
        self.post(reading::PATH_SEND, body, None).await
    }

    /// `POST /session/close`.
    pub(crate) async fn close(&self, session_id: &str) -> Result<(), Failure> {
        self.post(reading::PATH_CLOSE, &SessionBody { session_id }, None)
            .await
            .map(drop)
    }

    /// `POST /session/restart`.
    pub(crate) async fn restart(&self, session_id: &str) -> Result<(), Failure> {
        self.post(reading::PATH_RESTART, &SessionBody { session_id }, None)
            .await
            .map(drop)
    }

    /// `POST /session/transfer`.
    pub(crate) async fn transfer(&self, session_id: &str, to_new_id: &str) -> Result<(), Failure> {
        let body = TransferBody {
            session_id,
            to_new_id,
        };
        self.post(reading::PATH_TRANSFER, &body, None)
            .await
            .map(drop)
    }

    /// One call: the answer's JSON when it succeeded (2xx and a `Code` that
    /// is 0 or absent), else the failure as Spark described it.
    async fn post<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        timeout: Option<Duration>,
    ) -> Result<Value, Failure> {
        let mut request = self
            .http
            .post(format!("{}{}", self.base_url, path))
            .json(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await.map_err(Failure::Transport)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(Failure::Transport)?;
        let parsed = serde_json::from_slice::<Value>(&bytes).ok();

        if !status.is_success() {
            let (code, message) = match parsed.as_ref().filter(|v| v.is_object()) {
                Some(v) => (
                    int_field(v, "Code").ok(),
                    string_field(v, "Message").ok().filter(|m| !m.is_empty()),
                ),
                None => (None, snippet(&bytes)),
            };
            return Err(Failure::Answer {
                status: status.as_u16(),
                code,
                message,
                retry_after,
            });
        }

        let Some(value) = parsed.filter(Value::is_object) else {
            return Err(Failure::Unreadable(format!(
                "{path} answered HTTP {} with a body that is not a JSON object: {}",
                status.as_u16(),
                snippet(&bytes).unwrap_or_else(|| "(empty)".into())
            )));
        };
        match int_field(&value, "Code") {
            Field::Absent | Field::Present(0) => Ok(value),
            Field::Present(code) => Err(Failure::Answer {
                status: status.as_u16(),
                code: Some(code),
                message: string_field(&value, "Message")
                    .ok()
                    .filter(|m| !m.is_empty()),
                retry_after,
            }),
            Field::Wrong => Err(Failure::Unreadable(format!(
                "{path} answered a Code that is not a number: {}",
                value.get("Code").map(Value::to_string).unwrap_or_default()
            ))),
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    chat_core::wire::retry_after(
        headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()),
        chrono::Utc::now(),
    )
}

/// The start of a body, for error messages; `None` when empty.
fn snippet(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut cut: String = text.chars().take(BODY_SNIPPET_CHARS).collect();
    if text.chars().count() > BODY_SNIPPET_CHARS {
        cut.push('…');
    }
    Some(cut)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_readers_accept_numbers_and_strings_alike() {
        let v = json!({"a": "7", "b": 7, "c": 7.0, "d": "x", "e": [], "f": null, "g": ""});
        assert_eq!(int_field(&v, "a"), Field::Present(7));
        assert_eq!(int_field(&v, "b"), Field::Present(7));
        assert_eq!(int_field(&v, "c"), Field::Present(7));
        assert_eq!(int_field(&v, "d"), Field::Wrong);
        assert_eq!(int_field(&v, "e"), Field::Wrong);
        assert_eq!(int_field(&v, "f"), Field::Absent);
        assert_eq!(int_field(&v, "g"), Field::Absent);
        assert_eq!(int_field(&v, "missing"), Field::Absent);
        assert_eq!(string_field(&v, "b"), Field::Present("7".into()));
        assert_eq!(string_field(&v, "e"), Field::Wrong);
        assert_eq!(string_field(&v, "g"), Field::Present(String::new()));
    }

    #[test]
    fn wire_bodies_use_spark_field_names() {
        let body = SendBody {
            session_id: String::new(),
            to_id: "c1".into(),
            content_type: "0",
            content: "hi".into(),
            create_time: "2026-11-21 16:04:12".into(),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"SessionId": "", "ToId": "c1", "ContentType": "0", "Content": "hi",
                   "CreateTime": "2026-11-21 16:04:12"})
        );
        assert_eq!(
            serde_json::to_value(TransferBody {
                session_id: "s",
                to_new_id: "a2"
            })
            .unwrap(),
            json!({"SessionId": "s", "ToNewId": "a2"})
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("12"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(12)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn snippets_are_short() {
        assert_eq!(snippet(b"  "), None);
        let long = "x".repeat(500);
        let cut = snippet(long.as_bytes()).unwrap();
        assert_eq!(cut.chars().count(), BODY_SNIPPET_CHARS + 1);
    }
}

//! Raw ccmessaging calls: the two tokens, `queryHistoryChatMessage`, their
//! private wire types, and [`provider_error`], the one place a failed call
//! becomes a [`ProviderError`].
//!
//! Token life cycle: the app's AccessToken (tokenByAkSk) is cached until
//! [`refresh_margin`] before `CreateTime + Expires` (a quarter of its life,
//! between one second and one minute); each user's ccmessaging token
//! (applyToken) is cached until that margin before its one-hour life ends, and
//! replaced whenever a response carries a `ccmessaging-token` header. A 403
//! refreshes the AccessToken and a 401 the user's token, each at most once
//! per call, and the call is retried after each refresh (both tokens may
//! have expired together). Each cache is behind a tokio mutex held across the
//! refresh, so concurrent callers wait for one refresh instead of stampeding.
//! Tokens are [`Secret`]s, sent as sensitive headers and never logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chat_core::{wire, ProviderError, Secret};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::config::CcmessagingConfig;

const ACCESS_TOKEN_PATH: &str = "/apigovernance/api/oauth/tokenByAkSk";
const APPLY_TOKEN_PATH: &str = "/apiaccess/ccmessaging/applyToken";
const HISTORY_PATH: &str = "/apiaccess/ccmessaging/queryHistoryChatMessage";
const DOWNLOAD_PATH: &str = "/apiaccess/ccmessaging/downloadFileStream";

/// Header carrying a user's ccmessaging token, both ways.
const TOKEN_HEADER: &str = "ccmessaging-token";
/// Header naming the app on every call.
const APP_KEY_HEADER: &str = "x-app-key";

/// A user token lives one hour (applyToken does not say); it is replaced
/// [`refresh_margin`] before that.
const USER_TOKEN_LIFE: Duration = Duration::from_secs(3600);
/// `Expires` when tokenByAkSk leaves it out (its documented default).
const ACCESS_TOKEN_DEFAULT_SECS: i64 = 600;

/// `resultDesc` words that mark a `resultCode` failure as the caller's fault
/// (kept as [`ProviderError::Rejected`]) rather than a provider fault.
const CLIENT_ERROR_MARKERS: [&str; 7] = [
    "param",
    "invalid",
    "illegal",
    "not exist",
    "not found",
    "参数",
    "不存在",
];

/// Why a call did not produce an answer; turned into a [`ProviderError`]
/// only by [`provider_error`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// Connection failure, timeout, or a body that could not be received.
    Transport(reqwest::Error),
    /// A non-2xx answer (after the one token refresh, for 401/403).
    Status {
        status: StatusCode,
        body: String,
        retry_after: Option<Duration>,
    },
    /// HTTP 200 whose `resultCode` says the call failed.
    Result { code: String, desc: String },
    /// A file the provider does not know (downloadFileStream).
    Missing(String),
    /// An answer that is not the JSON the API describes.
    Unreadable(String),
    /// A request that cannot be made as asked (no customer, bad page token).
    Input(String),
    /// A credential or token that cannot travel in an HTTP header.
    Credential(&'static str),
    /// The HTTP client could not be built.
    Setup(String),
}

impl Failure {
    /// A 401 or 403: the token we sent was refused.
    fn is_auth(&self) -> bool {
        matches!(self, Failure::Status { status, .. }
            if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN)
    }
}

/// The one mapping from a failed call to the error the gateway acts on.
///
/// 401/403 (already retried with that token refreshed) -> `Unauthorized`;
/// 429 -> `RateLimited`; 400, 404 and other 4xx -> `Rejected` with the body's
/// `errorCode`/`exceptionInfo`/`resultDesc`; 5xx and connection failures ->
/// `Unavailable`; timeouts -> `Timeout`; unreadable answers -> `BadData`;
/// `resultCode` "1" -> `Unavailable` (retryable) with `resultDesc`, unless
/// the description plainly blames the request, then `Rejected`.
pub(crate) fn provider_error(failure: Failure) -> ProviderError {
    match failure {
        Failure::Transport(e) if e.is_timeout() => ProviderError::Timeout,
        Failure::Transport(e) => ProviderError::Unavailable(format!(
            "ccmessaging request failed: {}",
            wire::error_chain(&e)
        )),
        Failure::Status {
            status,
            body,
            retry_after,
        } => {
            let (code, reason) = error_reason(status, &body);
            match status.as_u16() {
                // A 404 names a wrong path or channel: the request's fault.
                404 => ProviderError::Rejected {
                    code,
                    message: reason,
                },
                n => wire::status_error("ccmessaging", status, n, code, reason, retry_after),
            }
        }
        Failure::Result { code, desc } => {
            let lower = desc.to_lowercase();
            if CLIENT_ERROR_MARKERS.iter().any(|m| lower.contains(m)) {
                ProviderError::Rejected {
                    code: Some(code),
                    message: desc,
                }
            } else {
                ProviderError::Unavailable(format!("ccmessaging resultCode {code}: {desc}"))
            }
        }
        Failure::Missing(what) => ProviderError::NotFound(what),
        Failure::Unreadable(what) => ProviderError::BadData(what),
        Failure::Input(what) => ProviderError::Rejected {
            code: None,
            message: what,
        },
        Failure::Credential(what) => {
            ProviderError::Unauthorized(format!("{what} cannot be sent as an HTTP header"))
        }
        Failure::Setup(what) => ProviderError::Unavailable(what),
    }
}

/// The provider's code and reason from an error body, else the status text
/// and the start of the body.
fn error_reason(status: StatusCode, body: &str) -> (Option<String>, String) {
    let parsed = serde_json::from_str::<ErrorBody>(body).unwrap_or_default();
    let code = text(&parsed.error_code).or_else(|| text(&parsed.result_code));
    let reason = text(&parsed.exception_info)
        .or_else(|| text(&parsed.result_desc))
        .or_else(|| text(&parsed.message));
    (code, wire::reason_text(status, reason, body))
}

/// A JSON string or number as text; anything else (null, empty) as `None`.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON number or numeric string as an integer.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Error body shapes seen across the API (`errorCode`/`exceptionInfo` from
/// the gateway layer, `resultCode`/`resultDesc` from ccmessaging itself).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ErrorBody {
    error_code: Value,
    exception_info: Value,
    result_code: Value,
    result_desc: Value,
    message: Value,
}

/// tokenByAkSk answer; times are epoch seconds and seconds, as strings.
#[derive(Debug, Deserialize)]
struct AccessTokenAnswer {
    #[serde(rename = "AccessToken", default)]
    access_token: Option<String>,
    #[serde(rename = "CreateTime", default)]
    create_time: Value,
    #[serde(rename = "Expires", default)]
    expires: Value,
}

/// applyToken answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplyTokenAnswer {
    #[serde(default)]
    result_code: Value,
    #[serde(default)]
    result_desc: Value,
    #[serde(default)]
    token: Option<String>,
}

/// queryHistoryChatMessage request; every value is a string on the wire.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryBody<'a> {
    channel_id: &'a str,
    user_id: &'a str,
    start_time: String,
    end_time: String,
    limit: String,
    offset: String,
    channel: &'a str,
}

/// queryHistoryChatMessage answer; items stay raw JSON for the mapping.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryAnswer {
    #[serde(default)]
    message_list: Option<Vec<Value>>,
    #[serde(default)]
    result_code: Value,
    #[serde(default)]
    result_desc: Value,
}

/// downloadFileStream request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DownloadBody<'a> {
    file_id: &'a str,
    channel: &'a str,
    file_type: &'a str,
}

/// downloadFileStream answer: the file as base64 (at most 2 MB).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DownloadAnswer {
    #[serde(default)]
    file_stream: Option<String>,
    #[serde(default)]
    result_code: Value,
    #[serde(default)]
    result_desc: Value,
}

/// A `resultCode` other than "0" is a failure even with HTTP 200.
fn check_result(code: &Value, desc: &Value) -> Result<(), Failure> {
    match text(code) {
        Some(code) if code != "0" => Err(Failure::Result {
            code,
            desc: text(desc).unwrap_or_else(|| "no resultDesc".to_string()),
        }),
        _ => Ok(()),
    }
}

/// One page of history to ask for.
#[derive(Debug)]
pub(crate) struct HistoryRequest<'a> {
    /// The customer (`userId`).
    pub user_id: &'a str,
    /// Epoch milliseconds, inclusive.
    pub start_ms: i64,
    /// Epoch milliseconds, inclusive.
    pub end_ms: i64,
    /// Page size.
    pub limit: u64,
    /// Items to skip.
    pub offset: u64,
}

/// A cached token and when to stop using it.
#[derive(Debug)]
struct Cached {
    value: Secret,
    refresh_at: Instant,
}

impl Cached {
    /// A user token just obtained (applyToken or a response header).
    fn user_token(value: String) -> Self {
        Cached {
            value: Secret::new(value),
            refresh_at: Instant::now()
                + USER_TOKEN_LIFE.saturating_sub(refresh_margin(USER_TOKEN_LIFE)),
        }
    }

    /// The token while it is still good to send.
    fn fresh(&self) -> Option<&Secret> {
        (Instant::now() < self.refresh_at).then_some(&self.value)
    }
}

/// How long before its end a token of `life` is replaced: a quarter of its
/// life, at least a second (a request in flight, and `CreateTime` counted
/// in whole seconds) and at most a minute, but never more than half of it.
/// So a 4 s token is used for 3 s and a 600 s one for 540 s.
pub(crate) fn refresh_margin(life: Duration) -> Duration {
    (life / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(60))
        .min(life / 2)
}

/// When to replace an AccessToken created at `create` (epoch seconds,
/// our clock if absent) living `expires` seconds, seen at `now_ms` (epoch
/// milliseconds).
fn access_refresh_at(create: &Value, expires: &Value, now_ms: i64) -> Instant {
    let life_secs = integer(expires)
        .filter(|s| *s > 0)
        .unwrap_or(ACCESS_TOKEN_DEFAULT_SECS);
    let life = Duration::from_secs(u64::try_from(life_secs).unwrap_or(0));
    // Tolerate milliseconds where seconds are documented.
    let created_ms = integer(create)
        .map(|t| if t > 100_000_000_000 { t } else { t * 1000 })
        .unwrap_or(now_ms);
    let usable_ms =
        i64::try_from(life.saturating_sub(refresh_margin(life)).as_millis()).unwrap_or(0);
    // A server clock ahead of ours must not stretch the life either.
    let left_ms = (created_ms + usable_ms - now_ms).min(usable_ms);
    Instant::now() + Duration::from_millis(u64::try_from(left_ms).unwrap_or(0))
}

/// One user's token slot, locked across its refresh.
type Slot = Arc<Mutex<Option<Cached>>>;

/// The HTTP side of the adapter: one `reqwest::Client`, the config and the
/// token caches.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    config: CcmessagingConfig,
    app_key: HeaderValue,
    access: Mutex<Option<Cached>>,
    users: std::sync::Mutex<HashMap<String, Slot>>,
}

/// A header value marked sensitive so no debug output shows it.
fn sensitive(value: &str, what: &'static str) -> Result<HeaderValue, Failure> {
    let mut header = HeaderValue::from_str(value).map_err(|_| Failure::Credential(what))?;
    header.set_sensitive(true);
    Ok(header)
}

/// An answer received in full.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    /// The reply if its status is 2xx, else the failure it stands for.
    fn success(self) -> Result<Reply, Failure> {
        if self.status.is_success() {
            return Ok(self);
        }
        let retry_after = wire::retry_after(
            self.headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()),
            chrono::Utc::now(),
        );
        Err(Failure::Status {
            status: self.status,
            body: String::from_utf8_lossy(&self.body).into_owned(),
            retry_after,
        })
    }

    /// The body as `T`.
    fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, Failure> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Failure::Unreadable(format!("{what} is not the expected JSON: {e}")))
    }

    /// A header's text, when present and non-empty.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

impl Client {
    /// Builds the one HTTP client, with the account's timeout on every call.
    pub(crate) fn new(config: CcmessagingConfig) -> Result<Self, Failure> {
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
        let app_key = sensitive(config.app_key.expose(), "app_key")?;
        Ok(Client {
            http,
            config,
            app_key,
            access: Mutex::new(None),
            users: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The account's API root, against which relative links resolve.
    pub(crate) fn base_url(&self) -> &url::Url {
        &self.config.base_url
    }

    /// The configured channel type (`WEB`).
    pub(crate) fn channel(&self) -> &str {
        &self.config.channel
    }

    /// One page of a user's history, as raw items in provider order.
    pub(crate) async fn query_history(
        &self,
        req: &HistoryRequest<'_>,
    ) -> Result<Vec<Value>, Failure> {
        let body = HistoryBody {
            channel_id: &self.config.channel_id,
            user_id: req.user_id,
            start_time: req.start_ms.to_string(),
            end_time: req.end_ms.to_string(),
            limit: req.limit.to_string(),
            offset: req.offset.to_string(),
            channel: &self.config.channel,
        };
        let reply = self.call_as(req.user_id, HISTORY_PATH, &body).await?;
        let answer: HistoryAnswer = reply.success()?.json("queryHistoryChatMessage answer")?;
        check_result(&answer.result_code, &answer.result_desc)?;
        match answer.message_list {
            Some(items) => Ok(items),
            None if text(&answer.result_code).is_some() => Ok(Vec::new()),
            None => Err(Failure::Unreadable(
                "queryHistoryChatMessage answer has neither messageList nor resultCode".into(),
            )),
        }
    }

    /// One file through `downloadFileStream`, authorised with `user_id`'s
    /// token. `resultCode` other than "0" means the provider does not know
    /// the file (providers/ccmessaging.md, "our reading").
    pub(crate) async fn download(
        &self,
        user_id: &str,
        file_id: &str,
        file_type: &str,
    ) -> Result<Vec<u8>, Failure> {
        let body = DownloadBody {
            file_id,
            channel: &self.config.channel,
            file_type,
        };
        let reply = self.call_as(user_id, DOWNLOAD_PATH, &body).await?;
        let answer: DownloadAnswer = reply.success()?.json("downloadFileStream answer")?;
        if let Some(code) = text(&answer.result_code).filter(|c| c != "0") {
            let desc = text(&answer.result_desc).unwrap_or_else(|| format!("resultCode {code}"));
            return Err(Failure::Missing(desc));
        }
        let stream = answer.file_stream.ok_or_else(|| {
            Failure::Unreadable("downloadFileStream answer has no fileStream".into())
        })?;
        base64::engine::general_purpose::STANDARD
            .decode(stream.trim())
            .map_err(|e| Failure::Unreadable(format!("fileStream is not base64: {e}")))
    }

    /// Posts `body` to `path` with the app key, the AccessToken and
    /// `user_id`'s ccmessaging token, refreshing each token at most once on
    /// its refusal: both may have expired together (a 403 for the
    /// AccessToken, then a 401 for the user's token), and a token refused
    /// again right after its refresh means the credentials themselves are
    /// refused. The reply is returned whatever its status.
    async fn call_as<B: Serialize>(
        &self,
        user_id: &str,
        path: &str,
        body: &B,
    ) -> Result<Reply, Failure> {
        let mut refreshed_access = false;
        let mut refreshed_user = false;
        loop {
            let (access, token) = self.credentials(user_id).await?;
            let mut headers = self.auth_headers(&access)?;
            headers.insert(
                TOKEN_HEADER,
                sensitive(token.expose(), "ccmessaging token")?,
            );
            let request = self.http.post(self.url(path)).headers(headers);
            let reply = self.send(request.json(body)).await?;
            if let Some(fresh) = reply.header(TOKEN_HEADER) {
                self.replace_user_token(user_id, fresh).await;
            }
            let refresh = match reply.status {
                StatusCode::FORBIDDEN if !refreshed_access => {
                    refreshed_access = true;
                    true
                }
                StatusCode::UNAUTHORIZED if !refreshed_user => {
                    refreshed_user = true;
                    true
                }
                _ => false,
            };
            if !refresh {
                return Ok(reply);
            }
            tracing::info!(
                status = reply.status.as_u16(),
                user_id,
                "ccmessaging refused a token; refreshing it and retrying"
            );
            if reply.status == StatusCode::FORBIDDEN {
                self.invalidate_access(&access).await;
            } else {
                self.invalidate_user(user_id, &token).await;
            }
        }
    }

    /// `base_url` + `path`, keeping any path prefix of the base.
    fn url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.config.base_url.as_str().trim_end_matches('/')
        )
    }

    /// Sends and reads the whole answer.
    async fn send(&self, request: RequestBuilder) -> Result<Reply, Failure> {
        let response = request.send().await.map_err(Failure::Transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(Failure::Transport)?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// `x-app-key` and `Authorization: Bearer {AccessToken}`.
    fn auth_headers(&self, access: &Secret) -> Result<HeaderMap, Failure> {
        let mut headers = HeaderMap::new();
        headers.insert(APP_KEY_HEADER, self.app_key.clone());
        headers.insert(
            AUTHORIZATION,
            sensitive(&format!("Bearer {}", access.expose()), "AccessToken")?,
        );
        Ok(headers)
    }

    /// The cached AccessToken, fetched first when missing or due.
    async fn access_token(&self) -> Result<Secret, Failure> {
        let mut cached = self.access.lock().await;
        if let Some(token) = cached.as_ref().and_then(Cached::fresh) {
            return Ok(token.clone());
        }
        tracing::debug!("requesting a ccmessaging AccessToken");
        let body = json!({
            "app_key": self.config.app_key.expose(),
            "app_secret": self.config.app_secret.expose(),
        });
        let request = self.http.post(self.url(ACCESS_TOKEN_PATH)).json(&body);
        let answer: AccessTokenAnswer = self
            .send(request)
            .await?
            .success()?
            .json("tokenByAkSk answer")?;
        let value = answer
            .access_token
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| Failure::Unreadable("tokenByAkSk answer has no AccessToken".into()))?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let token = Secret::new(value);
        // Even a token already due by our clock serves the call that fetched it.
        *cached = Some(Cached {
            value: token.clone(),
            refresh_at: access_refresh_at(&answer.create_time, &answer.expires, now_ms),
        });
        Ok(token)
    }

    /// Forgets the AccessToken if it is still the refused one.
    async fn invalidate_access(&self, refused: &Secret) {
        let mut cached = self.access.lock().await;
        if cached.as_ref().is_some_and(|c| c.value == *refused) {
            *cached = None;
        }
    }

    /// The lock-protected token slot of one user.
    fn user_slot(&self, user_id: &str) -> Slot {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.entry(user_id.to_string()).or_default().clone()
    }

    /// The AccessToken and the user's ccmessaging token for one call,
    /// applying for the user's token first when missing or due.
    async fn credentials(&self, user_id: &str) -> Result<(Secret, Secret), Failure> {
        let mut access = self.access_token().await?;
        let slot = self.user_slot(user_id);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref().and_then(Cached::fresh) {
            return Ok((access, token.clone()));
        }
        let applied = match self.apply_token(user_id, &access).await {
            Err(f) if f.is_auth() => {
                tracing::info!(
                    user_id,
                    "applyToken refused the AccessToken; refreshing it once"
                );
                self.invalidate_access(&access).await;
                access = self.access_token().await?;
                self.apply_token(user_id, &access).await?
            }
            other => other?,
        };
        let token = applied.value.clone();
        *cached = Some(applied);
        Ok((access, token))
    }

    /// applyToken for one user (`userName` is the user id too).
    async fn apply_token(&self, user_id: &str, access: &Secret) -> Result<Cached, Failure> {
        tracing::debug!(user_id, "applying for a ccmessaging token");
        let body = json!({
            "userId": user_id,
            "userName": user_id,
            "channelId": self.config.channel_id,
            "locale": self.config.locale,
        });
        let request = self
            .http
            .post(self.url(APPLY_TOKEN_PATH))
            .headers(self.auth_headers(access)?)
            .json(&body);
        let reply = self.send(request).await?.success()?;
        let answer: ApplyTokenAnswer = reply.json("applyToken answer")?;
        check_result(&answer.result_code, &answer.result_desc)?;
        answer
            .token
            .filter(|t| !t.trim().is_empty())
            .or_else(|| reply.header(TOKEN_HEADER).map(str::to_string))
            .map(Cached::user_token)
            .ok_or_else(|| Failure::Unreadable("applyToken answer has no token".into()))
    }

    /// Takes a token handed back in a `ccmessaging-token` header; the old
    /// one stops working at the provider. The same token again changes nothing.
    async fn replace_user_token(&self, user_id: &str, fresh: &str) {
        let slot = self.user_slot(user_id);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|c| c.value.expose() == fresh) {
            return;
        }
        tracing::debug!(user_id, "ccmessaging handed out a fresh user token");
        *cached = Some(Cached::user_token(fresh.to_string()));
    }

    /// Forgets the user's token if it is still the refused one.
    async fn invalidate_user(&self, user_id: &str, refused: &Secret) {
        let slot = self.user_slot(user_id);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|c| c.value == *refused) {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_refresh_margin_scales_with_the_life() {
        let secs = |s| Duration::from_secs(s);
        assert_eq!(refresh_margin(secs(4)), secs(1));
        assert_eq!(refresh_margin(secs(600)), secs(60));
        assert_eq!(refresh_margin(secs(3600)), secs(60));
        assert_eq!(refresh_margin(secs(120)), secs(30));
        assert_eq!(refresh_margin(secs(1)), Duration::from_millis(500));
    }

    #[test]
    fn access_token_is_replaced_before_it_expires() {
        let now = 1_545_650_171_000;
        let soon = Instant::now();
        let at = access_refresh_at(&json!("1545650171"), &json!("600"), now);
        let left = at.duration_since(soon).as_secs();
        assert!((535..=540).contains(&left), "{left}");
        // A 4 s token is used for at most 3 s.
        let at = access_refresh_at(&json!("1545650171"), &json!("4"), now);
        assert!(at <= Instant::now() + Duration::from_secs(3));
        assert!(at >= soon + Duration::from_secs(3));
        // Seen half a second after the second it was created in.
        let at = access_refresh_at(&json!("1545650171"), &json!("4"), now + 500);
        assert!(at <= Instant::now() + Duration::from_millis(2500));
        // Already expired by our clock: due at once.
        let at = access_refresh_at(&json!(1_545_640_171), &json!("600"), now);
        assert!(at <= Instant::now());
        // A server clock ahead of ours does not stretch the life.
        let at = access_refresh_at(&json!(1_545_660_171), &json!("600"), now);
        assert!(at.duration_since(soon).as_secs() <= 540);
    }

    #[test]
    fn result_code_one_is_retryable_unless_it_blames_the_request() {
        let e = provider_error(Failure::Result {
            code: "1".into(),
            desc: "system busy".into(),
        });
        assert!(matches!(e, ProviderError::Unavailable(ref m) if m.contains("system busy")));
        assert!(e.is_retryable());
        let e = provider_error(Failure::Result {
            code: "1".into(),
            desc: "Invalid parameter userId".into(),
        });
        assert!(matches!(e, ProviderError::Rejected { code: Some(ref c), .. } if c == "1"));
    }

    #[test]
    fn error_bodies_give_code_and_reason() {
        let (code, reason) = error_reason(
            StatusCode::BAD_REQUEST,
            r#"{"errorCode":"AGW.0101","exceptionInfo":"bad app"}"#,
        );
        assert_eq!(code.as_deref(), Some("AGW.0101"));
        assert_eq!(reason, "bad app");
        let (code, reason) = error_reason(StatusCode::NOT_FOUND, "nope");
        assert_eq!(code, None);
        assert_eq!(reason, "404 Not Found: nope");
    }
}

//! The client value, its builder, and the one function every call goes
//! through (URL, auth, retries, error decoding).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use crate::error::{from_answer, Error, Result};
use crate::query::Query;
use crate::retry::RetryPolicy;

/// A typed client of one chat-gateway.
///
/// Cheap to clone (clones share one connection pool); every method is
/// `&self`, so one client serves a whole program.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) auth: Option<HeaderValue>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key is a secret: say only whether there is one.
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("api_key", &self.inner.auth.as_ref().map(|_| "…"))
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    retry: RetryPolicy,
    timeout: Duration,
    connect_timeout: Duration,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// The API key, sent as `Authorization: Bearer`; without one the
    /// gateway must run keyless (loopback only).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// How temporary failures are retried (default: 4 tries in all).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Time limit of one ordinary request (default 30 s). Long polls of the
    /// event feed get their `wait` on top.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time limit for opening a connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Use this `reqwest::Client` (proxies, TLS roots, …) instead of a new one;
    /// `connect_timeout` is then the given client's.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client> {
        let mut base = Url::parse(&self.base_url)?;
        if base.cannot_be_a_base() {
            return Err(Error::Url(
                url::ParseError::RelativeUrlWithCannotBeABaseBase,
            ));
        }
        // A trailing slash so path segments are appended, not substituted.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = match self.http {
            Some(h) => h,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .user_agent(concat!("chat-gateway-client/", env!("CARGO_PKG_VERSION")))
                .build()?,
        };
        let auth = match self.api_key {
            Some(key) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    Error::Decode("the API key holds characters not allowed in a header".into())
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                retry: self.retry,
                timeout: self.timeout,
            }),
        })
    }
}

/// Whether a request may be repeated after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Safety {
    /// A read, or a send with an `Idempotency-Key`: any temporary failure.
    Idempotent,
    /// Anything else: only when the gateway never processed it.
    Once,
}

/// One call: method, path segments, query, JSON body, extra headers.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) path: Vec<String>,
    pub(crate) query: Query,
    pub(crate) body: Option<Bytes>,
    pub(crate) headers: HeaderMap,
    pub(crate) safety: Safety,
    pub(crate) timeout: Option<Duration>,
}

impl Call {
    pub(crate) fn get(path: &[&str], query: Query) -> Self {
        Call {
            method: Method::GET,
            path: path.iter().map(|s| s.to_string()).collect(),
            query,
            body: None,
            headers: HeaderMap::new(),
            safety: Safety::Idempotent,
            timeout: None,
        }
    }

    pub(crate) fn with_json(
        method: Method,
        path: &[&str],
        body: &impl serde::Serialize,
        safety: Safety,
    ) -> Result<Self> {
        let body = serde_json::to_vec(body).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Call {
            method,
            path: path.iter().map(|s| s.to_string()).collect(),
            query: Query::default(),
            body: Some(Bytes::from(body)),
            headers: HeaderMap::new(),
            safety,
            timeout: None,
        })
    }
}

/// `{"data": …}`.
#[derive(Deserialize)]
pub(crate) struct Data<T> {
    pub(crate) data: T,
}

/// One page of a list: `{"data": […], "next_cursor": "…" | null}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub data: Vec<T>,
    /// Pass it as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl Client {
    /// A builder for the gateway at `base_url` (`http://127.0.0.1:8080`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            http: None,
        }
    }

    /// A client with defaults and this API key.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Result<Client> {
        Client::builder(base_url).api_key(api_key).build()
    }

    /// The gateway's base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    pub(crate) fn url(&self, path: &[String], query: &Query) -> Result<Url> {
        let mut url = self.inner.base.clone();
        {
            let mut segs = url
                .path_segments_mut()
                .map_err(|()| Error::Url(url::ParseError::RelativeUrlWithCannotBeABaseBase))?;
            segs.pop_if_empty();
            segs.extend(path);
        }
        if !query.0.is_empty() {
            url.query_pairs_mut().extend_pairs(query.0.iter());
        }
        Ok(url)
    }

    /// Sends a call, retrying per the policy; a 2xx answer is returned, any
    /// other becomes [`Error::Api`].
    pub(crate) async fn execute(&self, call: Call) -> Result<reqwest::Response> {
        let url = self.url(&call.path, &call.query)?;
        let policy = self.inner.retry;
        let mut attempt = 1u32;
        loop {
            let mut req = self
                .inner
                .http
                .request(call.method.clone(), url.clone())
                .timeout(call.timeout.unwrap_or(self.inner.timeout))
                .headers(call.headers.clone());
            if let Some(auth) = &self.inner.auth {
                req = req.header(AUTHORIZATION, auth.clone());
            }
            if let Some(body) = &call.body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let (err, retry_after) = match req.send().await {
                Ok(resp) if resp.status().is_success() || resp.status().is_redirection() => {
                    return Ok(resp)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = resp.bytes().await.unwrap_or_default();
                    let api = from_answer(status, &headers, &body);
                    let retry_after = api.retry_after;
                    let again = match status {
                        StatusCode::TOO_MANY_REQUESTS => true,
                        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
                            call.safety == Safety::Idempotent
                        }
                        _ => false,
                    };
                    if !again {
                        return Err(Error::Api(Box::new(api)));
                    }
                    (Error::Api(Box::new(api)), retry_after)
                }
                Err(e) => {
                    let again = match call.safety {
                        Safety::Idempotent => e.is_connect() || e.is_timeout() || e.is_request(),
                        Safety::Once => e.is_connect(),
                    };
                    if !again {
                        return Err(Error::Transport(e));
                    }
                    (Error::Transport(e), None)
                }
            };
            if attempt >= policy.max_attempts {
                return Err(err);
            }
            let Some(pause) = policy.delay(attempt, retry_after) else {
                return Err(err);
            };
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// Executes and decodes a JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let resp = self.execute(call).await?;
        let body = resp.bytes().await?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))
    }

    /// Executes and unwraps `{"data": …}`.
    pub(crate) async fn data<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        Ok(self.json::<Data<T>>(call).await?.data)
    }
}

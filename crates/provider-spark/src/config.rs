//! How one Spark account is reached.

use std::time::Duration;

use chat_core::time::Tz;
use chat_core::Secret;

/// Everything the adapter needs to talk to one Spark account.
///
/// Spark does not specify its authentication, so credentials travel as
/// configured extra headers whose values are [`Secret`]s: `Debug` never shows
/// them.
#[derive(Debug, Clone)]
pub struct SparkConfig {
    /// Where the API lives, e.g. `https://spark.example.com` (paths such as
    /// `/message/query` are appended; a path prefix is kept).
    pub base_url: String,
    /// The account's zone: Spark writes and reads `CreateTime` as wall-clock
    /// time in it.
    pub timezone: Tz,
    /// How long one long poll (`/message/query`) may be held by Spark; also
    /// what [`chat_core::Provider::live_hold`] reports.
    pub poll_timeout: Duration,
    /// Added to `poll_timeout` for the poll's HTTP timeout, so a poll held the
    /// full time still has room to deliver its answer.
    pub poll_margin: Duration,
    /// HTTP timeout of every other call (send, close, restart, transfer), and
    /// the connect timeout of all calls.
    pub request_timeout: Duration,
    /// Extra headers sent with every call (credentials, tenant ids): name and
    /// secret value.
    pub headers: Vec<(String, Secret)>,
}

impl SparkConfig {
    /// Default for [`SparkConfig::poll_timeout`]: Spark holds a poll about 25 s.
    pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default for [`SparkConfig::poll_margin`].
    pub const DEFAULT_POLL_MARGIN: Duration = Duration::from_secs(5);
    /// Default for [`SparkConfig::request_timeout`].
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

    /// A configuration with default timeouts and no extra headers: all a
    /// simulator or a test needs.
    pub fn new(base_url: impl Into<String>, timezone: Tz) -> Self {
        SparkConfig {
            base_url: base_url.into(),
            timezone,
            poll_timeout: Self::DEFAULT_POLL_TIMEOUT,
            poll_margin: Self::DEFAULT_POLL_MARGIN,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            headers: Vec::new(),
        }
    }

    /// Adds a header sent with every call, e.g. the account's credentials.
    pub fn with_header(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    /// Sets how long one long poll may be held.
    pub fn with_poll_timeout(mut self, poll_timeout: Duration) -> Self {
        self.poll_timeout = poll_timeout;
        self
    }

    /// Sets the slack added to the poll timeout for the poll's HTTP timeout.
    pub fn with_poll_margin(mut self, poll_margin: Duration) -> Self {
        self.poll_margin = poll_margin;
        self
    }

    /// Sets the timeout of calls other than the long poll.
    pub fn with_request_timeout(mut self, request_timeout: Duration) -> Self {
        self.request_timeout = request_timeout;
        self
    }
}

/// A configuration the adapter cannot work with; reported at start-up so a
/// bad account fails loudly instead of on its first call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `base_url` is not an absolute `http`/`https` URL.
    #[error("Spark base_url `{url}` is not usable: {reason}")]
    BaseUrl {
        /// The configured value.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header name is not a valid HTTP header name.
    #[error("Spark header name `{0}` is not a valid HTTP header name")]
    HeaderName(String),
    /// A header value cannot be sent (the value itself is never shown).
    #[error("Spark header `{0}` has a value that is not a valid HTTP header value")]
    HeaderValue(String),
    /// A timeout is zero.
    #[error("Spark {0} must be greater than zero")]
    ZeroTimeout(&'static str),
    /// The HTTP client could not be built.
    #[error("Spark HTTP client could not be built: {0}")]
    Client(String),
}

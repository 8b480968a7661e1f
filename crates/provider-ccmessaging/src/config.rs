//! Settings for one ccmessaging channel account.

use std::time::Duration;

use chat_core::Secret;
use url::Url;

/// How long one provider call may take when the account does not say.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the adapter needs to read one ccmessaging channel's history.
///
/// Secrets are [`Secret`]s so the struct can be logged with `{:?}` safely.
#[derive(Debug, Clone)]
pub struct CcmessagingConfig {
    /// Root of the tenant's API (`https://service.besclouds.com`); the
    /// adapter appends `/apigovernance/…` and `/apiaccess/…` to it, so a
    /// simulator or a path prefix works the same way.
    pub base_url: Url,
    /// Sent as `x-app-key` on every call and as `app_key` to tokenByAkSk.
    pub app_key: Secret,
    /// Sent as `app_secret` to tokenByAkSk, nowhere else.
    pub app_secret: Secret,
    /// The channel whose history is read (`channelId` on every call).
    pub channel_id: String,
    /// Channel type (`WEB`); also the session channel when an item has none.
    pub channel: String,
    /// Locale applyToken asks for (`zh`, `en_US`…).
    pub locale: String,
    /// Time budget of one provider call, connection included.
    pub request_timeout: Duration,
    /// Customers whose history the gateway's sync reads.
    pub customers: Vec<String>,
}

impl CcmessagingConfig {
    /// A config with the usual defaults: channel `WEB`, locale `zh` and a
    /// [`DEFAULT_REQUEST_TIMEOUT`], so tests and the simulator suite need
    /// only a base URL and credentials.
    pub fn new(
        base_url: Url,
        app_key: Secret,
        app_secret: Secret,
        channel_id: impl Into<String>,
    ) -> Self {
        CcmessagingConfig {
            base_url,
            app_key,
            app_secret,
            channel_id: channel_id.into(),
            channel: "WEB".to_string(),
            locale: "zh".to_string(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            customers: Vec::new(),
        }
    }
}

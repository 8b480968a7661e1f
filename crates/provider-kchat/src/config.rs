//! Settings for one KF5 Kchat account.

use std::time::Duration;

use chat_core::time::Tz;
use chat_core::Secret;
use url::Url;

/// How long one provider call may take when the account does not say.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How the agent account signs in; KF5 takes either over HTTP Basic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KchatCredential {
    /// An API token: Basic user `{email}/token`, password the token.
    ApiToken(Secret),
    /// The agent's password: Basic user `{email}`, password the password.
    Password(Secret),
}

impl KchatCredential {
    /// The Basic auth user name and password for `email`.
    pub(crate) fn basic_auth(&self, email: &str) -> (String, &Secret) {
        match self {
            KchatCredential::ApiToken(token) => (format!("{email}/token"), token),
            KchatCredential::Password(password) => (email.to_string(), password),
        }
    }
}

/// Everything the adapter needs to read one Kchat account.
///
/// Secrets are [`Secret`]s so the struct can be logged with `{:?}` safely.
#[derive(Debug, Clone)]
pub struct KchatConfig {
    /// Root of the account (`https://{subdomain}.kf5.com`); the adapter
    /// appends `/apiv2/…`, and follows only `next_page` links on the same
    /// origin.
    pub base_url: Url,
    /// The agent's sign-in email.
    pub email: String,
    /// API token or password.
    pub credential: KchatCredential,
    /// The account's zone: Kchat writes times and reads date filters in it.
    pub timezone: Tz,
    /// Time budget of one provider call, connection included.
    pub request_timeout: Duration,
}

impl KchatConfig {
    /// A config with the [`DEFAULT_REQUEST_TIMEOUT`], so tests and the
    /// simulator suite need only a base URL, credentials and a zone.
    pub fn new(
        base_url: Url,
        email: impl Into<String>,
        credential: KchatCredential,
        timezone: Tz,
    ) -> Self {
        KchatConfig {
            base_url,
            email: email.into(),
            credential,
            timezone,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

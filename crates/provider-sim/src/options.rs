//! What a simulator serves and how it behaves.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::faults::FaultProfile;
use crate::script::Script;
use crate::traffic::HistoryOptions;

/// Which provider API a simulator serves.
///
/// `All` serves the three on one listener (their paths do not collide), which
/// is what the demo uses so one port carries every provider. The same enum
/// names a provider in control calls, where `All` means "each served one".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimProvider {
    /// The Spark agent API (`/message/*`, `/session/*`).
    Spark,
    /// Huawei ccmessaging (`/apigovernance/*`, `/apiaccess/ccmessaging/*`).
    Ccmessaging,
    /// KF5 Kchat (`/apiv2/*`).
    Kchat,
    /// All three.
    All,
}

impl SimProvider {
    /// The lower-case name used on the command line and in control routes.
    pub fn name(self) -> &'static str {
        match self {
            SimProvider::Spark => "spark",
            SimProvider::Ccmessaging => "ccmessaging",
            SimProvider::Kchat => "kchat",
            SimProvider::All => "all",
        }
    }

    /// The address the binary listens on when `--listen` is not given.
    pub fn default_listen(self) -> std::net::SocketAddr {
        let port = match self {
            SimProvider::Spark => 9101,
            SimProvider::Ccmessaging => 9102,
            SimProvider::Kchat => 9103,
            SimProvider::All => 9100,
        };
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Whether a server started for `self` serves `single`.
    pub fn includes(self, single: SimProvider) -> bool {
        self == SimProvider::All || self == single
    }
}

impl fmt::Display for SimProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SimProvider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "spark" => Ok(SimProvider::Spark),
            "ccmessaging" => Ok(SimProvider::Ccmessaging),
            "kchat" => Ok(SimProvider::Kchat),
            "all" => Ok(SimProvider::All),
            other => Err(format!(
                "unknown provider `{other}` (spark, ccmessaging, kchat or all)"
            )),
        }
    }
}

/// A header every Spark call must carry, since Spark's auth is whatever the
/// account's configured `headers` say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderCredential {
    /// Header name, compared case-insensitively (e.g. `Authorization`).
    pub name: String,
    /// Exact value (e.g. `Token demo`).
    pub value: String,
}

/// The ccmessaging application's keys, checked by `tokenByAkSk` and on every
/// call's `x-app-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcmCredentials {
    /// `app_key` / `x-app-key`.
    pub app_key: String,
    /// `app_secret`.
    pub app_secret: String,
    /// The channel id history items belong to (`channelId` filter).
    pub channel_id: String,
}

impl Default for CcmCredentials {
    fn default() -> Self {
        Self {
            app_key: "demo-app-key".into(),
            app_secret: "demo-app-secret".into(),
            channel_id: "202207292843442389".into(),
        }
    }
}

/// The Kchat agent login, accepted as `{email}/token:{api_token}` or
/// `{email}:{password}` in HTTP Basic auth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KchatCredentials {
    /// The agent's e-mail address.
    pub email: String,
    /// The API token.
    pub api_token: String,
    /// The password.
    pub password: String,
}

impl Default for KchatCredentials {
    fn default() -> Self {
        Self {
            email: "agent@example.com".into(),
            api_token: "demo-token".into(),
            password: "demo-password".into(),
        }
    }
}

/// How a simulator behaves. `Default` gives the production-like values the
/// provider pages describe; tests shorten the hold time and token lifetimes.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// How long a live Spark query with nothing to deliver is held.
    pub spark_hold: Duration,
    /// At most this many pending entries in one live Spark answer; `None`
    /// (the provider's behaviour) returns every unacked message at once.
    pub spark_live_batch_max: Option<usize>,
    /// The header Spark calls must carry; `None` accepts any call.
    pub spark_auth: Option<HeaderCredential>,
    /// Lifetime of a ccmessaging AccessToken when `X-Token-Expire` is absent.
    pub ccm_access_token_ttl: Duration,
    /// Lifetime of a per-user `ccmessaging-token`.
    pub ccm_user_token_ttl: Duration,
    /// Rotate the caller's `ccmessaging-token` after every this many
    /// successful history calls (the fresh one comes in the response header).
    pub ccm_rotate_every: Option<u32>,
    /// ccmessaging keys and channel.
    pub ccm: CcmCredentials,
    /// Kchat requests allowed per rolling minute before 429.
    pub kchat_rate_limit_per_minute: u32,
    /// The largest Kchat page the server hands out (never above 100).
    pub kchat_max_page_size: usize,
    /// Kchat login.
    pub kchat: KchatCredentials,
    /// The zone of provider-local times (Spark `CreateTime`, Kchat times and
    /// date filters).
    pub time_zone: Tz,
    /// Finished conversations seeded over the past days at start (before
    /// the script), so clients syncing "the last 7 days" find history.
    pub history: Option<HistoryOptions>,
    /// A script applied at start.
    pub script: Option<Script>,
    /// Faults in force from the start, for every served provider.
    pub faults: Option<FaultProfile>,
    /// Seed for every random choice (ids, fault rates, traffic), so a run can
    /// be repeated; `None` seeds from entropy.
    pub seed: Option<u64>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            spark_hold: Duration::from_secs(25),
            spark_live_batch_max: None,
            spark_auth: Some(HeaderCredential {
                name: "Authorization".into(),
                value: "Token demo".into(),
            }),
            ccm_access_token_ttl: Duration::from_secs(600),
            ccm_user_token_ttl: Duration::from_secs(3600),
            ccm_rotate_every: None,
            ccm: CcmCredentials::default(),
            kchat_rate_limit_per_minute: 200,
            kchat_max_page_size: 100,
            kchat: KchatCredentials::default(),
            time_zone: chrono_tz::Asia::Shanghai,
            history: None,
            script: None,
            faults: None,
            seed: None,
        }
    }
}

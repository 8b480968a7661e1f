//! An account's provider-specific settings, owned by the provider's crate.
//!
//! The configuration file keeps one flat `[[accounts]]` table per account
//! (CONFIG.md). The gateway reads the keys every account has
//! ([`AccountBasics`]) and hands the rest to the provider's
//! [`AccountSettings`] type, which names its keys, reads and checks them,
//! and builds the adapter. So a provider's keys, defaults and checks live
//! in its own crate, and the gateway's registry holds one line per provider.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use crate::time::Tz;
use crate::{Provider, Secret};

/// A problem in an account's settings: which key, and what is wrong with
/// it, in a sentence. The gateway adds the file and the account's index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct SettingsError {
    /// The key as written in the account's table (`app_key`, `headers.X`).
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl SettingsError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        SettingsError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// The keys every account has, already checked by the gateway.
#[derive(Debug, Clone)]
pub struct AccountBasics {
    /// The account's unique name.
    pub name: String,
    /// The provider's API root.
    pub base_url: Url,
    /// How provider-local times are read.
    pub timezone: Tz,
    /// One provider call's budget.
    pub request_timeout: Duration,
}

/// A provider's own `[[accounts]]` keys. Deserialized from the account's
/// table minus the common keys; unknown keys are refused by the gateway
/// before this is read, using [`AccountSettings::KEYS`].
pub trait AccountSettings: DeserializeOwned + Sized {
    /// The provider's name in the configuration and the API.
    const PROVIDER: &'static str;
    /// Every key this provider accepts beyond the common ones.
    const KEYS: &'static [&'static str];
    /// Seconds between polls when `poll_interval_secs` is not set.
    const DEFAULT_POLL_INTERVAL_SECS: u64 = 10;

    /// Checks what serde cannot (required combinations, secrets from the
    /// environment, header names), naming the key at fault.
    fn check(&self) -> Result<(), SettingsError>;

    /// The adapter for this account.
    fn build(self, basics: &AccountBasics) -> Result<Arc<dyn Provider>, SettingsError>;
}

/// A secret written inline or read from the environment (`{ env = "VAR" }`),
/// so config files can be committed without credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SecretSource {
    /// Written in the file.
    Inline(Secret),
    /// Read from an environment variable at start-up.
    Env {
        /// The variable's name.
        env: String,
    },
}

impl SecretSource {
    /// The secret; an unset variable is a problem with `key`.
    pub fn resolve(&self, key: &str) -> Result<Secret, SettingsError> {
        match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::Env { env } => std::env::var(env).map(Secret::new).map_err(|_| {
                SettingsError::new(key, format!("environment variable {env} is not set"))
            }),
        }
    }
}

//! The `[[accounts]]` keys of a Spark account (CONFIG.md), read and checked
//! here so the gateway needs to know nothing about them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chat_core::settings::{AccountBasics, AccountSettings, SecretSource, SettingsError};
use chat_core::{Provider, Secret};
use serde::Deserialize;

use crate::{SparkConfig, SparkProvider};

/// A Spark account's own keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkSettings {
    /// How long one long poll may be held, in seconds (default 30).
    pub poll_timeout_secs: Option<u64>,
    /// Extra headers on every call (Spark's auth), values may come from
    /// the environment.
    pub headers: Option<BTreeMap<String, SecretSource>>,
}

impl SparkSettings {
    fn headers(&self) -> Result<Vec<(String, Secret)>, SettingsError> {
        let mut out = Vec::new();
        for (name, value) in self.headers.iter().flatten() {
            let key = format!("headers.{name}");
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SettingsError::new(&key, "not a valid header name"))?;
            out.push((name.clone(), value.resolve(&key)?));
        }
        Ok(out)
    }
}

impl AccountSettings for SparkSettings {
    const PROVIDER: &'static str = "spark";
    const KEYS: &'static [&'static str] = &["poll_timeout_secs", "headers"];

    fn check(&self) -> Result<(), SettingsError> {
        if self.poll_timeout_secs == Some(0) {
            return Err(SettingsError::new(
                "poll_timeout_secs",
                "must be at least 1",
            ));
        }
        self.headers().map(|_| ())
    }

    fn build(self, basics: &AccountBasics) -> Result<Arc<dyn Provider>, SettingsError> {
        self.check()?;
        let mut config = SparkConfig::new(basics.base_url.as_str(), basics.timezone)
            .with_poll_timeout(Duration::from_secs(self.poll_timeout_secs.unwrap_or(30)))
            .with_request_timeout(basics.request_timeout);
        for (name, value) in self.headers()? {
            config = config.with_header(name, value);
        }
        let provider = SparkProvider::new(config)
            .map_err(|e| SettingsError::new("base_url", e.to_string()))?;
        Ok(Arc::new(provider))
    }
}

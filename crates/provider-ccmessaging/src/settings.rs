//! The `[[accounts]]` keys of a ccmessaging account (CONFIG.md), read and
//! checked here so the gateway needs to know nothing about them.

use std::sync::Arc;

use chat_core::settings::{AccountBasics, AccountSettings, SecretSource, SettingsError};
use chat_core::{Provider, Secret};
use serde::Deserialize;

use crate::{CcmessagingConfig, CcmessagingProvider};

/// A ccmessaging account's own keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CcmessagingSettings {
    /// Sent as `x-app-key` and to tokenByAkSk; required.
    pub app_key: Option<SecretSource>,
    /// tokenByAkSk's secret; required.
    pub app_secret: Option<SecretSource>,
    /// The web channel whose history is read; required.
    pub channel_id: Option<String>,
    /// Channel type (default `WEB`).
    pub channel: Option<String>,
    /// applyToken's locale (default `zh`).
    pub locale: Option<String>,
    /// Customers whose history the sync reads (a backfill may name more).
    pub customers: Option<Vec<String>>,
}

impl CcmessagingSettings {
    fn secret(&self, key: &str, value: &Option<SecretSource>) -> Result<Secret, SettingsError> {
        value
            .as_ref()
            .ok_or_else(|| SettingsError::new(key, "required for provider ccmessaging"))?
            .resolve(key)
    }
}

impl AccountSettings for CcmessagingSettings {
    const PROVIDER: &'static str = "ccmessaging";
    const KEYS: &'static [&'static str] = &[
        "app_key",
        "app_secret",
        "channel_id",
        "channel",
        "locale",
        "customers",
    ];

    fn check(&self) -> Result<(), SettingsError> {
        self.secret("app_key", &self.app_key)?;
        self.secret("app_secret", &self.app_secret)?;
        match self.channel_id.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => {}
            _ => {
                return Err(SettingsError::new(
                    "channel_id",
                    "required for provider ccmessaging",
                ))
            }
        }
        for c in self.customers.iter().flatten() {
            if c.trim().is_empty() || c.chars().count() > 24 {
                return Err(SettingsError::new(
                    "customers",
                    format!("`{c}` is not a ccmessaging userId (1 to 24 characters)"),
                ));
            }
        }
        Ok(())
    }

    fn build(self, basics: &AccountBasics) -> Result<Arc<dyn Provider>, SettingsError> {
        self.check()?;
        let mut config = CcmessagingConfig::new(
            basics.base_url.clone(),
            self.secret("app_key", &self.app_key)?,
            self.secret("app_secret", &self.app_secret)?,
            self.channel_id.clone().unwrap_or_default(),
        );
        if let Some(channel) = self.channel {
            config.channel = channel;
        }
        if let Some(locale) = self.locale {
            config.locale = locale;
        }
        config.customers = self.customers.unwrap_or_default();
        config.request_timeout = basics.request_timeout;
        let provider = CcmessagingProvider::new(config)
            .map_err(|e| SettingsError::new("base_url", e.to_string()))?;
        Ok(Arc::new(provider))
    }
}

//! The `[[accounts]]` keys of a Kchat account (CONFIG.md), read and checked
//! here so the gateway needs to know nothing about them.

use std::sync::Arc;

use chat_core::settings::{AccountBasics, AccountSettings, SecretSource, SettingsError};
use chat_core::Provider;
use serde::Deserialize;

use crate::{KchatConfig, KchatCredential, KchatProvider};

/// A Kchat account's own keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KchatSettings {
    /// The agent's e-mail, the Basic auth user; required.
    pub email: Option<String>,
    /// API token (preferred): Basic `{email}/token:{api_token}`.
    pub api_token: Option<SecretSource>,
    /// Password, when no token is used: Basic `{email}:{password}`.
    pub password: Option<SecretSource>,
}

impl KchatSettings {
    fn credential(&self) -> Result<KchatCredential, SettingsError> {
        match (&self.api_token, &self.password) {
            (Some(token), _) => Ok(KchatCredential::ApiToken(token.resolve("api_token")?)),
            (None, Some(pw)) => Ok(KchatCredential::Password(pw.resolve("password")?)),
            (None, None) => Err(SettingsError::new(
                "api_token",
                "kchat needs api_token or password",
            )),
        }
    }
}

impl AccountSettings for KchatSettings {
    const PROVIDER: &'static str = "kchat";
    const KEYS: &'static [&'static str] = &["email", "api_token", "password"];
    const DEFAULT_POLL_INTERVAL_SECS: u64 = 30;

    fn check(&self) -> Result<(), SettingsError> {
        if self.email.as_deref().is_none_or(|e| e.trim().is_empty()) {
            return Err(SettingsError::new("email", "required for provider kchat"));
        }
        if let (Some(_), Some(pw)) = (&self.api_token, &self.password) {
            pw.resolve("password")?;
        }
        self.credential().map(|_| ())
    }

    fn build(self, basics: &AccountBasics) -> Result<Arc<dyn Provider>, SettingsError> {
        self.check()?;
        let mut config = KchatConfig::new(
            basics.base_url.clone(),
            self.email.clone().unwrap_or_default(),
            self.credential()?,
            basics.timezone,
        );
        config.request_timeout = basics.request_timeout;
        let provider = KchatProvider::new(config)
            .map_err(|e| SettingsError::new("base_url", e.to_string()))?;
        Ok(Arc::new(provider))
    }
}

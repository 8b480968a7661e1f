//! The account registry: one `Arc<dyn Provider>` per configured account,
//! built once at start, and [`REGISTRY`], the one table naming the
//! providers this build knows. Adding a provider is one crate plus one
//! line in that table (README, "Adding a provider").

use std::sync::Arc;
use std::time::Duration;

use chat_core::settings::{AccountBasics, AccountSettings, SettingsError};
use chat_core::Provider;

use crate::config::{AccountConfig, Config};
use crate::store::AccountRef;

/// A configured account and its provider adapter.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its validated configuration.
    pub config: AccountConfig,
    /// The adapter the gateway calls.
    pub provider: Arc<dyn Provider>,
}

impl Account {
    /// The store's handle for this account.
    pub fn reference(&self) -> AccountRef {
        AccountRef {
            name: self.config.name.clone(),
            provider: self.config.provider.clone(),
        }
    }
}

/// Every configured account, in configuration order, and the files
/// fetched from their providers.
#[derive(Debug, Default)]
pub struct Accounts {
    accounts: Vec<Account>,
    files: crate::api::media::FileCache,
}

/// An adapter that could not be built from its (already validated) config.
#[derive(Debug, thiserror::Error)]
#[error("account {account}: {problem}")]
pub struct BuildError {
    /// Which account.
    pub account: String,
    /// What the adapter said.
    pub problem: String,
}

impl Accounts {
    /// Builds every account's adapter.
    pub fn build(config: &Config) -> Result<Accounts, BuildError> {
        let accounts = config
            .accounts
            .iter()
            .map(|a| {
                Ok(Account {
                    config: a.clone(),
                    provider: build_provider(a).map_err(|problem| BuildError {
                        account: a.name.clone(),
                        problem,
                    })?,
                })
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(Accounts {
            accounts,
            files: Default::default(),
        })
    }

    /// Wraps already built accounts (tests, demo).
    pub fn from_accounts(accounts: Vec<Account>) -> Self {
        Accounts {
            accounts,
            files: Default::default(),
        }
    }

    /// Files already fetched from the providers, so `GET
    /// /v1/messages/{id}/media` calls a provider once per file.
    pub fn files(&self) -> &crate::api::media::FileCache {
        &self.files
    }

    /// All accounts.
    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter()
    }

    /// One account by name.
    pub fn get(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.config.name == name)
    }
}

/// One provider this build knows: its name, its own `[[accounts]]` keys,
/// and how to check and build an account of it. Everything else about a
/// provider lives in its crate (its `AccountSettings` type).
#[derive(Debug, Clone, Copy)]
pub struct ProviderEntry {
    /// The `provider` value in the configuration and the API.
    pub name: &'static str,
    /// Keys this provider accepts beyond the common ones.
    pub keys: &'static [&'static str],
    /// `poll_interval_secs` when the account does not set it.
    pub default_poll_interval_secs: u64,
    /// Reads and checks an account's provider keys.
    pub check: fn(&toml::Table) -> Result<(), SettingsError>,
    /// Builds the adapter from checked keys.
    pub build: BuildFn,
}

/// Builds an account's adapter from its basics and provider keys.
pub type BuildFn = fn(&AccountBasics, &toml::Table) -> Result<Arc<dyn Provider>, SettingsError>;

const fn entry<S: AccountSettings>() -> ProviderEntry {
    ProviderEntry {
        name: S::PROVIDER,
        keys: S::KEYS,
        default_poll_interval_secs: S::DEFAULT_POLL_INTERVAL_SECS,
        check: check::<S>,
        build: build::<S>,
    }
}

/// The registry: every provider this build knows, one line each.
pub const REGISTRY: &[ProviderEntry] = &[
    entry::<provider_spark::SparkSettings>(),
    entry::<provider_ccmessaging::CcmessagingSettings>(),
    entry::<provider_kchat::KchatSettings>(),
];

/// The registry entry of `name`.
pub fn provider_entry(name: &str) -> Option<&'static ProviderEntry> {
    REGISTRY.iter().find(|e| e.name == name)
}

/// Names of the providers this build knows, in registry order.
pub fn provider_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.name).collect()
}

/// The provider keys as `S`; a type mistake is pinned on its key by
/// reading the keys one at a time (every settings field is optional).
fn read<S: AccountSettings>(keys: &toml::Table) -> Result<S, SettingsError> {
    toml::Value::Table(keys.clone())
        .try_into::<S>()
        .map_err(|whole| {
            for (key, value) in keys {
                let single = toml::Table::from_iter([(key.clone(), value.clone())]);
                if let Err(e) = toml::Value::Table(single).try_into::<S>() {
                    return SettingsError::new(key.clone(), e.message().to_string());
                }
            }
            SettingsError::new(S::PROVIDER, whole.message().to_string())
        })
}

fn check<S: AccountSettings>(keys: &toml::Table) -> Result<(), SettingsError> {
    read::<S>(keys)?.check()
}

fn build<S: AccountSettings>(
    basics: &AccountBasics,
    keys: &toml::Table,
) -> Result<Arc<dyn Provider>, SettingsError> {
    read::<S>(keys)?.build(basics)
}

fn build_provider(a: &AccountConfig) -> Result<Arc<dyn Provider>, String> {
    let entry = provider_entry(&a.provider)
        .ok_or_else(|| format!("provider `{}` is not in this build", a.provider))?;
    let basics = AccountBasics {
        name: a.name.clone(),
        base_url: a.base_url.clone(),
        timezone: a.timezone,
        request_timeout: Duration::from_secs(a.request_timeout_secs),
    };
    (entry.build)(&basics, a.settings.keys()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every enum in `v` that lists a provider this build knows.
    fn provider_enums<'a>(v: &'a serde_json::Value, out: &mut Vec<Vec<&'a str>>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    if let (true, Some(values)) = (k == "enum", child.as_array()) {
                        let values: Vec<&str> = values.iter().filter_map(|x| x.as_str()).collect();
                        if values.iter().any(|x| provider_entry(x).is_some()) {
                            out.push(values);
                        }
                    }
                    provider_enums(child, out);
                }
            }
            serde_json::Value::Array(items) => {
                for child in items {
                    provider_enums(child, out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_openapi_provider_enum_matches_the_registry() {
        let doc: serde_json::Value = serde_json::from_str(crate::api::docs::OPENAPI_JSON).unwrap();
        let mut enums = Vec::new();
        provider_enums(&doc, &mut enums);
        assert!(!enums.is_empty());
        for documented in enums {
            assert_eq!(documented, provider_names());
        }
    }

    #[test]
    fn registry_names_and_keys_do_not_collide() {
        let names = provider_names();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(n), "{n} twice");
        }
        for e in REGISTRY {
            assert!(e.default_poll_interval_secs >= 1);
            for k in e.keys {
                assert!(!k.is_empty());
            }
        }
    }
}

//! The account registry: one `Arc<dyn Provider>` per configured account,
//! built once at start. Adding a provider is one crate plus one arm here.

use std::sync::Arc;
use std::time::Duration;

use chat_core::Provider;

use crate::config::{AccountConfig, Config, ProviderSettings};
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

fn build_provider(a: &AccountConfig) -> Result<Arc<dyn Provider>, String> {
    let request_timeout = Duration::from_secs(a.request_timeout_secs);
    match &a.settings {
        ProviderSettings::Spark {
            headers,
            poll_timeout_secs,
        } => {
            let mut c = provider_spark::SparkConfig::new(a.base_url.as_str(), a.timezone)
                .with_poll_timeout(Duration::from_secs(*poll_timeout_secs))
                .with_request_timeout(request_timeout);
            for (name, value) in headers {
                c = c.with_header(name.clone(), value.clone());
            }
            Ok(Arc::new(
                provider_spark::SparkProvider::new(c).map_err(|e| e.to_string())?,
            ))
        }
        ProviderSettings::Ccmessaging {
            app_key,
            app_secret,
            channel_id,
            channel,
            locale,
            ..
        } => {
            let mut c = provider_ccmessaging::CcmessagingConfig::new(
                a.base_url.clone(),
                app_key.clone(),
                app_secret.clone(),
                channel_id.clone(),
            );
            c.channel.clone_from(channel);
            c.locale.clone_from(locale);
            c.request_timeout = request_timeout;
            Ok(Arc::new(
                provider_ccmessaging::CcmessagingProvider::new(c).map_err(|e| e.to_string())?,
            ))
        }
        ProviderSettings::Kchat {
            email,
            api_token,
            password,
        } => {
            let credential = match (api_token, password) {
                (Some(token), _) => provider_kchat::KchatCredential::ApiToken(token.clone()),
                (None, Some(pw)) => provider_kchat::KchatCredential::Password(pw.clone()),
                (None, None) => return Err("kchat needs api_token or password".into()),
            };
            let mut c = provider_kchat::KchatConfig::new(
                a.base_url.clone(),
                email.clone(),
                credential,
                a.timezone,
            );
            c.request_timeout = request_timeout;
            Ok(Arc::new(
                provider_kchat::KchatProvider::new(c).map_err(|e| e.to_string())?,
            ))
        }
    }
}

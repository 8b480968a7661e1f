//! KF5 Kchat chat history adapter (provider `kchat`).
//!
//! Reads the chat list (`/apiv2/chats.json`, following `next_page`) and
//! chat details (`/apiv2/chats/{id}.json`) with HTTP Basic auth and maps
//! them to the chat-core model as `providers/kchat.md` describes.
//! Capabilities: `history` and `list_sessions`. `fetch_history` lists the
//! chats created in the range and fetches each one's detail, so a backfill
//! and the poller share one code path.
//!
//! Layout: [`config`] (the account settings), `client` (raw calls, private
//! wire handling), `mapping` (chats and messages to the core model), and
//! this file (the [`Provider`] implementation).
//!
//! # Error policy
//! Every failed call becomes a [`ProviderError`] in exactly one function,
//! `client::provider_error`: 401 -> `Unauthorized`; 404 -> `NotFound`;
//! 429 -> `RateLimited` with the `Retry-After` delay; other 4xx ->
//! `Rejected` with the body's `message`; 5xx and connection failures ->
//! `Unavailable`; no answer within `request_timeout` -> `Timeout`; an
//! answer that is not JSON of the documented shape, or a `next_page` token
//! pointing away from `base_url`'s origin -> `BadData`.
//!
//! Bad items never fail an answer: a chat or message that cannot be mapped
//! is skipped and logged; unknown enum values and message types keep `raw`
//! and are logged once per value. The password or API token is never logged.

mod client;
pub mod config;
mod mapping;
pub mod settings;

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use chat_core::time::Tz;
use chat_core::{
    Capabilities, Capability, HistoryPage, HistoryQuery, Provider, ProviderError, SessionChange,
    SessionListQuery, SessionPage,
};
use chrono::{DateTime, Utc};

use crate::client::{provider_error, ChatList, Client, Failure};
use crate::mapping::Issue;

pub use crate::config::{KchatConfig, KchatCredential, DEFAULT_REQUEST_TIMEOUT};
pub use crate::settings::KchatSettings;

/// One Kchat account, as the gateway uses it.
#[derive(Debug)]
pub struct KchatProvider {
    client: Client,
    timezone: Tz,
    /// Host of `base_url`, naming the account in logs.
    host: String,
    /// `base_url`, against which relative links in answers resolve.
    base_url: url::Url,
    /// Unknown values already logged, so each is logged once.
    warned: Mutex<HashSet<(&'static str, String)>>,
}

impl KchatProvider {
    /// An adapter for the account in `config`; no call is made until asked.
    pub fn new(config: KchatConfig) -> Result<Self, ProviderError> {
        let client = Client::new(&config).map_err(provider_error)?;
        Ok(KchatProvider {
            client,
            timezone: config.timezone,
            host: config.base_url.host_str().unwrap_or_default().to_string(),
            base_url: config.base_url.clone(),
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// A list page: the `page` token's URL, else the first page of chats
    /// created from `from` to `to` (now when absent), as account-zone dates.
    async fn list_page(
        &self,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
        page: Option<&str>,
        visitor_id: Option<&str>,
    ) -> Result<ChatList, Failure> {
        let url = match page {
            Some(token) => self.client.page_url(token)?,
            None => {
                let day = |t: DateTime<Utc>| t.with_timezone(&self.timezone).date_naive();
                let to = to.unwrap_or_else(Utc::now);
                self.client.chats_url(day(from), day(to), visitor_id)
            }
        };
        self.client.list(url).await
    }

    async fn sessions(&self, q: &SessionListQuery) -> Result<SessionPage, Failure> {
        let list = self
            .list_page(q.created_from, q.created_to, q.page.as_deref(), None)
            .await?;
        let mut issues = Vec::new();
        let sessions = list
            .chats
            .iter()
            .filter_map(|chat| mapping::map_summary(chat, self.timezone, &mut issues))
            .collect();
        self.report(&issues);
        Ok(SessionPage {
            sessions,
            next_page: list.next_page,
            total: list.count,
        })
    }

    /// One chat detail, mapped; also reports how many message items it had.
    async fn session(&self, id: &str) -> Result<(SessionChange, u64), Failure> {
        let chat = self.client.chat(id).await?;
        let mut issues = Vec::new();
        let mut change = mapping::map_detail(&chat, id.trim(), self.timezone, &mut issues);
        self.report(&issues);
        chat_core::links::absolutize(std::slice::from_mut(&mut change), &self.base_url);
        let items = u64::try_from(mapping::message_items(&chat)).unwrap_or(u64::MAX);
        Ok((change, items))
    }

    async fn history(&self, q: &HistoryQuery) -> Result<HistoryPage, Failure> {
        let visitor_id = q
            .customer_id
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let list = self
            .list_page(q.from, q.to, q.page.as_deref(), visitor_id)
            .await?;
        let mut changes = Vec::with_capacity(list.chats.len());
        let mut fetched = 0u64;
        let mut issues = Vec::new();
        for chat in &list.chats {
            let Some(summary) = mapping::map_summary(chat, self.timezone, &mut issues) else {
                continue;
            };
            match self.session(&summary.external_id).await {
                Ok((change, items)) => {
                    fetched = fetched.saturating_add(items);
                    changes.push(change);
                }
                // Gone between the list and the detail: nothing to read.
                Err(f) if f.is_not_found() => tracing::warn!(
                    host = self.host.as_str(),
                    chat_id = summary.external_id.as_str(),
                    "listed Kchat chat not found; skipped"
                ),
                Err(f) => return Err(f),
            }
        }
        self.report(&issues);
        Ok(HistoryPage {
            changes,
            fetched,
            next_page: list.next_page,
        })
    }

    /// Logs what the mapping could not take as given.
    fn report(&self, issues: &[Issue]) {
        let host = self.host.as_str();
        for issue in issues {
            match issue {
                Issue::Skipped {
                    chat_id,
                    message_id,
                    reason,
                } => tracing::warn!(
                    host,
                    chat_id = chat_id.as_deref().unwrap_or("-"),
                    message_id = message_id.as_deref().unwrap_or("-"),
                    reason,
                    "skipped a Kchat item"
                ),
                Issue::BadField {
                    chat_id,
                    field,
                    value,
                } => tracing::warn!(
                    host,
                    chat_id = chat_id.as_str(),
                    field,
                    value = value.as_str(),
                    "unreadable Kchat time; left unset, kept in raw"
                ),
                Issue::UnknownValue { field, value } => {
                    let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
                    if warned.insert((field, value.clone())) {
                        tracing::warn!(
                            host,
                            field,
                            value = value.as_str(),
                            "unknown Kchat value, raw kept (logged once)"
                        );
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Provider for KchatProvider {
    fn name(&self) -> &'static str {
        "kchat"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::of(&[Capability::History, Capability::ListSessions])
    }

    /// Chats created in the range (account-zone days, inclusive), 100 a
    /// page; `page` is the previous answer's `next_page` URL.
    async fn list_sessions(&self, q: &SessionListQuery) -> Result<SessionPage, ProviderError> {
        self.sessions(q).await.map_err(provider_error)
    }

    /// One chat with all its messages; an unknown id is `NotFound`.
    async fn get_session(&self, external_id: &str) -> Result<SessionChange, ProviderError> {
        self.session(external_id)
            .await
            .map(|(change, _)| change)
            .map_err(provider_error)
    }

    /// The chats created from `from` to `to` (by account-zone day; of one
    /// visitor when `customer_id` is set) with all their messages, one list
    /// page of details at a time; `page` is the list's `next_page`. Messages
    /// are not cut to the range: a chat comes whole, and stored ones dedupe.
    async fn fetch_history(&self, q: &HistoryQuery) -> Result<HistoryPage, ProviderError> {
        self.history(q).await.map_err(provider_error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chat_core::time::parse_zone;
    use chat_core::Secret;

    #[test]
    fn an_unknown_value_is_logged_once() {
        let config = KchatConfig::new(
            "http://127.0.0.1:9".parse().unwrap(),
            "agent@example.com",
            KchatCredential::ApiToken(Secret::new("token")),
            parse_zone("Asia/Shanghai").unwrap(),
        );
        let provider = KchatProvider::new(config).unwrap();
        let issue = Issue::UnknownValue {
            field: "message type",
            value: "chat.sticker".into(),
        };
        provider.report(&[issue.clone(), issue.clone()]);
        provider.report(&[issue]);
        assert_eq!(provider.warned.lock().unwrap().len(), 1);
    }
}

//! Huawei Cloud ccmessaging history adapter (provider `ccmessaging`).
//!
//! Reads one customer's chat history at a time through
//! `queryHistoryChatMessage` and maps it to the chat-core model as
//! `providers/ccmessaging.md` describes, and fetches attachments through
//! `downloadFileStream`. Capability: `history` only (the gateway does not
//! poll or send as the customer).
//!
//! Layout: [`config`] (the account settings), `client` (raw calls, the token
//! life cycle, private wire types), `mapping` (items to the core model),
//! and this file (the [`Provider`] implementation).
//!
//! # Error policy
//! Every failed call becomes a [`ProviderError`] in exactly one function,
//! `client::provider_error`:
//! - 401/403: the relevant token (403 the AccessToken, 401 the user's
//!   ccmessaging token) is refreshed at most once per call and the call
//!   retried (both may have expired together); a token refused again after
//!   its refresh is `Unauthorized`;
//! - 400, 404 and other 4xx: `Rejected`, carrying the body's `errorCode` and
//!   `exceptionInfo`/`resultDesc`; 429: `RateLimited`;
//! - 5xx and connection failures: `Unavailable`; no answer within
//!   `request_timeout`: `Timeout`; an answer that is not the documented
//!   JSON (or an unusable page token): `BadData`;
//! - HTTP 200 with `resultCode` "1": `Unavailable` with `resultDesc`
//!   (retryable), or `Rejected` when the description blames the request;
//! - a history query without a valid customer id: `Rejected`.
//!
//! Bad items never fail a page: an item without `id` or `sendTime` is
//! skipped and logged with the channel, user and item id; unknown enum
//! values map to a system sender or an event, keep `raw`, and are logged
//! once per value. Tokens and the app secret are never logged.

mod client;
pub mod config;
mod html;
mod mapping;
mod recall;
pub mod settings;

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use chat_core::{
    Capabilities, Capability, HistoryPage, HistoryQuery, MediaFile, MediaRequest, Provider,
    ProviderError,
};
use chrono::Utc;

use crate::client::{provider_error, Client, Failure, HistoryRequest};
use crate::mapping::{Issue, PageContext};
use crate::recall::Recall;

pub use crate::config::{CcmessagingConfig, DEFAULT_REQUEST_TIMEOUT};
pub use crate::settings::CcmessagingSettings;

/// Items asked for per history page: the API's maximum. A shorter page is
/// the last one.
pub const PAGE_LIMIT: u64 = 100;

/// The longest `userId` the API accepts.
const MAX_USER_ID_CHARS: usize = 24;

/// One ccmessaging channel account, as the gateway uses it.
#[derive(Debug)]
pub struct CcmessagingProvider {
    client: Client,
    channel_id: String,
    /// Customers whose history the sync reads.
    customers: Vec<String>,
    /// Unknown enum values already logged, so each is logged once.
    warned: Mutex<HashSet<(&'static str, String)>>,
    /// Customer and session facts over every page read, so re-reads in
    /// any order report the same name, avatar, assignment and agent.
    recall: Mutex<Recall>,
}

impl CcmessagingProvider {
    /// An adapter for the account in `config`; no call is made until the
    /// first history page is asked for.
    pub fn new(config: CcmessagingConfig) -> Result<Self, ProviderError> {
        let channel_id = config.channel_id.clone();
        let customers = config.customers.clone();
        let client = Client::new(config).map_err(provider_error)?;
        Ok(CcmessagingProvider {
            client,
            channel_id,
            customers,
            warned: Mutex::new(HashSet::new()),
            recall: Mutex::new(Recall::default()),
        })
    }

    /// One page: the request, the call and the mapping.
    async fn history_page(&self, q: &HistoryQuery) -> Result<HistoryPage, Failure> {
        let user_id = q
            .customer_id
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Failure::Input(
                    "ccmessaging history is read per customer: customer_id is required".into(),
                )
            })?;
        if user_id.chars().count() > MAX_USER_ID_CHARS {
            return Err(Failure::Input(format!(
                "customer_id `{user_id}` is longer than the {MAX_USER_ID_CHARS} characters ccmessaging allows"
            )));
        }
        let offset = match q.page.as_deref() {
            None => 0,
            Some(token) => token.trim().parse::<u64>().map_err(|_| {
                Failure::Unreadable(format!("page token `{token}` is not a ccmessaging offset"))
            })?,
        };
        let request = HistoryRequest {
            user_id,
            start_ms: q.from.timestamp_millis(),
            end_ms: q.to.unwrap_or_else(Utc::now).timestamp_millis(),
            limit: PAGE_LIMIT,
            offset,
        };
        let items = self.client.query_history(&request).await?;
        let mut issues = Vec::new();
        let ctx = PageContext {
            user_id,
            default_channel: self.client.channel(),
            base_url: self.client.base_url(),
        };
        let changes = {
            let mut recall = self.recall.lock().unwrap_or_else(|e| e.into_inner());
            mapping::map_history(&items, ctx, &mut recall, &mut issues)
        };
        self.report(user_id, &issues);
        let fetched = u64::try_from(items.len()).unwrap_or(u64::MAX);
        Ok(HistoryPage {
            changes,
            fetched,
            next_page: (fetched >= PAGE_LIMIT).then(|| offset.saturating_add(fetched).to_string()),
        })
    }

    /// Logs what the mapping could not take as given.
    fn report(&self, user_id: &str, issues: &[Issue]) {
        let channel_id = self.channel_id.as_str();
        for issue in issues {
            match issue {
                Issue::Skipped { id, reason } => tracing::warn!(
                    channel_id,
                    user_id,
                    item_id = id.as_deref().unwrap_or("-"),
                    reason,
                    "skipped a ccmessaging history item"
                ),
                Issue::BadField { id, field, reason } => tracing::warn!(
                    channel_id,
                    user_id,
                    item_id = id.as_str(),
                    field,
                    reason = reason.as_str(),
                    "ccmessaging item field unreadable; kept in raw"
                ),
                Issue::UnknownValue { field, value } => {
                    let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
                    if warned.insert((field, value.clone())) {
                        tracing::warn!(
                            channel_id,
                            user_id,
                            field,
                            value = value.as_str(),
                            "unknown ccmessaging value, mapped as system/event with raw kept (logged once)"
                        );
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Provider for CcmessagingProvider {
    fn name(&self) -> &'static str {
        "ccmessaging"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::of(&[Capability::History])
    }

    fn history_per_customer(&self) -> bool {
        true
    }

    fn sync_customers(&self) -> Vec<String> {
        self.customers.clone()
    }

    /// One page of the customer's history between `from` and `to` (now when
    /// absent); `page` is the offset handed back by the previous page.
    async fn fetch_history(&self, q: &HistoryQuery) -> Result<HistoryPage, ProviderError> {
        self.history_page(q).await.map_err(provider_error)
    }

    /// The file through `downloadFileStream`, authorised with the
    /// session's customer's token; its type comes from the extension.
    async fn fetch_media(&self, req: &MediaRequest) -> Result<MediaFile, ProviderError> {
        let file_id = req
            .media
            .file_id
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .ok_or_else(|| ProviderError::NotFound("the message names no file".into()))?;
        let user_id = req
            .customer_id
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty() && u.chars().count() <= MAX_USER_ID_CHARS)
            .ok_or_else(|| ProviderError::Rejected {
                code: None,
                message: "ccmessaging downloads need the session's customer id".into(),
            })?;
        let file_type = mapping::file_type(&req.media, req.kind);
        let bytes = self
            .client
            .download(user_id, file_id, &file_type)
            .await
            .map_err(provider_error)?;
        Ok(MediaFile {
            bytes,
            content_type: req
                .media
                .mime_type
                .clone()
                .or_else(|| mapping::mime_type(&file_type)),
            file_name: req.media.file_name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chat_core::Secret;

    #[test]
    fn an_unknown_value_is_logged_once() {
        let config = CcmessagingConfig::new(
            "http://127.0.0.1:9".parse().unwrap(),
            Secret::new("key"),
            Secret::new("secret"),
            "channel",
        );
        let provider = CcmessagingProvider::new(config).unwrap();
        let issue = Issue::UnknownValue {
            field: "sourceType",
            value: "MARTIAN".into(),
        };
        provider.report("u1", &[issue.clone(), issue.clone()]);
        provider.report("u2", &[issue]);
        assert_eq!(provider.warned.lock().unwrap().len(), 1);
    }
}

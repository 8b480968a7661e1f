//! The `Provider` trait: what the gateway asks of every chat provider.
//!
//! The gateway holds one `Arc<dyn Provider>` per account and asks
//! [`Provider::capabilities`] before each action; methods outside a provider's
//! capabilities answer [`ProviderError::Unsupported`]. Cursors are opaque to
//! the gateway: it stores what an adapter hands back and passes it in again,
//! so an adapter can resume after a restart.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Capabilities, Media, MessageKind, ProviderError, SessionChange};

/// How a live receive call should behave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LivePoll {
    /// The resume point the gateway stored with the rows it last committed.
    /// `None`: only what arrives from now on.
    pub version: Option<String>,
    /// Message ids committed since the previous call; only these may be
    /// acknowledged to the provider.
    pub acks: Vec<String>,
}

/// Whether a live batch came from history catch-up or from the live feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveMode {
    /// Replaying what came after the stored version.
    History,
    /// Real-time delivery.
    Live,
}

/// One answer of a live receive call.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveBatch {
    /// Session changes in provider delivery order.
    pub changes: Vec<SessionChange>,
    /// Which mode answered.
    pub mode: LiveMode,
    /// The resume point after this batch, to be stored in the same
    /// transaction as its rows. `None` keeps live mode.
    pub version: Option<String>,
    /// History mode only: nothing more to replay, switch to live.
    pub caught_up: bool,
}

/// A page request for listing sessions (Kchat's chat list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionListQuery {
    /// Sessions created at or after this instant (providers may round to days).
    pub created_from: DateTime<Utc>,
    /// Sessions created at or before this instant; `None` = now.
    pub created_to: Option<DateTime<Utc>>,
    /// Opaque page token from the previous [`SessionPage`]; `None` = first page.
    pub page: Option<String>,
}

/// One page of session summaries (no messages).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    /// Summaries; `fingerprint` tells whether the detail changed.
    pub sessions: Vec<crate::ProviderSession>,
    /// Token for the next page; `None` on the last one.
    pub next_page: Option<String>,
    /// Total number of matching sessions, when the provider says.
    pub total: Option<u64>,
}

/// A page request for message history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Whose history (ccmessaging's `userId`); `None` where the provider has no customers.
    pub customer_id: Option<String>,
    /// Messages sent at or after this instant.
    pub from: DateTime<Utc>,
    /// Messages sent at or before this instant; `None` = now.
    pub to: Option<DateTime<Utc>>,
    /// Opaque page token from the previous [`HistoryPage`].
    pub page: Option<String>,
}

/// One page of message history, grouped into sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// Session changes in provider order (oldest first).
    pub changes: Vec<SessionChange>,
    /// Number of provider items read, including ones that could not be mapped.
    pub fetched: u64,
    /// Token for the next page; `None` on the last one.
    pub next_page: Option<String>,
}

/// What the provider can carry in a send; checked before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendLimits {
    /// Kinds the provider accepts; others get 422 `unsupported_content`.
    pub kinds: Vec<MessageKind>,
    /// Longest text in Unicode scalar values; longer gets 422 `content_too_long`.
    pub max_text_chars: Option<usize>,
}

/// A message for the provider to deliver to a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The session to send into; `None` asks the provider for a new session
    /// (outreach, confirmed by the caller).
    pub session_external_id: Option<String>,
    /// The customer's provider id.
    pub customer_id: String,
    /// Text or image.
    pub kind: MessageKind,
    /// The text, for `text`.
    pub text: Option<String>,
    /// The media URL, for `image`.
    pub media_url: Option<String>,
    /// When the gateway accepted it (providers want a creation time).
    pub created_at: DateTime<Utc>,
}

/// The provider's acknowledgement of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The provider's id for the sent message, so its echo is recognised.
    pub message_external_id: Option<String>,
    /// The session it went into (the new one, for outreach).
    pub session_external_id: Option<String>,
}

/// Which file to fetch: a stored message's attachment and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRequest {
    /// The customer of the message's session (ccmessaging authorises
    /// downloads with a customer's token).
    pub customer_id: Option<String>,
    /// The message's kind, for providers that want a file type.
    pub kind: MessageKind,
    /// The attachment as stored (`file_id`, `mime_type`, `file_name`).
    pub media: Media,
}

/// A file's bytes as the provider handed them over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    /// The content.
    pub bytes: Vec<u8>,
    /// Its MIME type, when the adapter knows it (from the extension).
    pub content_type: Option<String>,
    /// Its name, when known.
    pub file_name: Option<String>,
}

/// One chat provider account, as the gateway uses it.
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Provider name as the API shows it (`spark`, `ccmessaging`, `kchat`).
    fn name(&self) -> &'static str;

    /// What this provider supports; the gateway checks before calling.
    fn capabilities(&self) -> Capabilities;

    /// What a send may carry; `None` when the provider cannot send.
    fn send_limits(&self) -> Option<SendLimits> {
        None
    }

    /// Whether history is read one customer at a time (ccmessaging), so
    /// sync and backfill walk customers rather than a time range alone.
    fn history_per_customer(&self) -> bool {
        false
    }

    /// Customers whose history the sync reads, for providers whose history
    /// is read per customer (ccmessaging's configured `customers`).
    fn sync_customers(&self) -> Vec<String> {
        Vec::new()
    }

    /// How long one live call may be held by the provider, so callers can
    /// size their own timeouts.
    fn live_hold(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Receives the next live batch (capability `live`).
    async fn poll_live(&self, _poll: &LivePoll) -> Result<LiveBatch, ProviderError> {
        Err(ProviderError::Unsupported("live"))
    }

    /// Lists session summaries (capability `list_sessions`).
    async fn list_sessions(&self, _q: &SessionListQuery) -> Result<SessionPage, ProviderError> {
        Err(ProviderError::Unsupported("list_sessions"))
    }

    /// One session with all its messages (capability `list_sessions`).
    async fn get_session(&self, _external_id: &str) -> Result<SessionChange, ProviderError> {
        Err(ProviderError::Unsupported("get_session"))
    }

    /// A page of message history (capability `history`, for providers whose
    /// history is read per customer or time range).
    async fn fetch_history(&self, _q: &HistoryQuery) -> Result<HistoryPage, ProviderError> {
        Err(ProviderError::Unsupported("history"))
    }

    /// A stored message's file, for providers that serve attachments by id
    /// rather than by URL (ccmessaging's `downloadFileStream`). An unknown
    /// file is [`ProviderError::NotFound`].
    async fn fetch_media(&self, _req: &MediaRequest) -> Result<MediaFile, ProviderError> {
        Err(ProviderError::Unsupported("media"))
    }

    /// Delivers a message (capabilities `send`, `outreach`).
    async fn send(&self, _req: &SendRequest) -> Result<SendReceipt, ProviderError> {
        Err(ProviderError::Unsupported("send"))
    }

    /// Ends a session (capability `close`).
    async fn close(&self, _session_external_id: &str) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported("close"))
    }

    /// Reopens a closed session (capability `restart`).
    async fn restart(&self, _session_external_id: &str) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported("restart"))
    }

    /// Hands a session to another agent (capability `transfer`).
    async fn transfer(
        &self,
        _session_external_id: &str,
        _agent_id: &str,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported("transfer"))
    }
}

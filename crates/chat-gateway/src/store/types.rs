//! The store's inputs and outputs: filters, pages, cursors, sync state.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chat_core::{Direction, EventType, MessageKind, SessionStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded single-node file database, the default.
    Sqlite,
    /// Production database; several replicas may share it.
    Postgres,
}

impl Backend {
    /// Picks the backend from a database URL; `None` for other schemes.
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// Short lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The account a write belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRef {
    /// Configured account name.
    pub name: String,
    /// Its provider's name.
    pub provider: String,
}

/// Which accounts a caller may see; objects outside it are "not found".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccountScope {
    /// Every account.
    #[default]
    All,
    /// Only these names.
    Only(Vec<String>),
}

impl AccountScope {
    /// Whether `account` is visible.
    pub fn allows(&self, account: &str) -> bool {
        match self {
            AccountScope::All => true,
            AccountScope::Only(names) => names.iter().any(|n| n == account),
        }
    }
}

/// Sort direction of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

impl Order {
    fn tag(self) -> &'static str {
        match self {
            Order::Asc => "a",
            Order::Desc => "d",
        }
    }
}

/// Position after the last row of a page: the sort time and the row's
/// insertion number (which also keeps provider order among equal times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    /// Sort key, epoch microseconds.
    pub at: i64,
    /// Tie-breaker: insertion order.
    pub pk: i64,
}

/// A page request: how many, where to start, which way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows wanted (already validated to 1..=500).
    pub limit: u32,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
    /// Sort direction.
    pub order: Order,
}

impl PageRequest {
    /// Decodes the cursor, refusing one made for the other sort order (the
    /// caller changed `order` mid-walk) or one that is not ours.
    pub fn keyset(&self) -> Result<Option<Keyset>, StoreError> {
        let Some(raw) = &self.cursor else {
            return Ok(None);
        };
        let bad = || StoreError::Invalid("`cursor` is not a cursor this list returned".into());
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.split('|');
        let (Some("v1"), Some(tag), Some(at), Some(pk), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        if tag != self.order.tag() {
            return Err(StoreError::Invalid(
                "`cursor` was made for the other `order`; start again without it".into(),
            ));
        }
        Ok(Some(Keyset {
            at: at.parse().map_err(|_| bad())?,
            pk: pk.parse().map_err(|_| bad())?,
        }))
    }

    /// Encodes the position after `last` for this order.
    pub fn encode(&self, last: Keyset) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1|{}|{}|{}", self.order.tag(), last.at, last.pk))
    }
}

/// One page of a list, plus where the next one starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub data: Vec<T>,
    /// Cursor for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Session list filters (API.md "Session filters"). Times are a half-open
/// window: `after` inclusive, `before` exclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFilter {
    /// Visible accounts.
    pub scope: AccountScope,
    /// Exact account name.
    pub account: Option<String>,
    /// Exact provider name.
    pub provider: Option<String>,
    /// Open or closed.
    pub status: Option<SessionStatus>,
    /// Customer's provider id.
    pub customer_id: Option<String>,
    /// Agent's provider id.
    pub agent_id: Option<String>,
    /// Channel, lower case.
    pub channel: Option<String>,
    /// The provider's session id.
    pub external_id: Option<String>,
    /// `created_at >= this`.
    pub created_after: Option<DateTime<Utc>>,
    /// `created_at < this`.
    pub created_before: Option<DateTime<Utc>>,
    /// `updated_at >= this`.
    pub updated_after: Option<DateTime<Utc>>,
    /// Include the provider's raw JSON.
    pub include_raw: bool,
}

/// Message list filters (API.md "Message filters").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageFilter {
    /// Visible accounts.
    pub scope: AccountScope,
    /// Exact account name.
    pub account: Option<String>,
    /// Exact provider name.
    pub provider: Option<String>,
    /// Gateway session id.
    pub session_id: Option<String>,
    /// Customer's provider id (of the message's session).
    pub customer_id: Option<String>,
    /// Content kind.
    pub kind: Option<MessageKind>,
    /// Inbound or outbound.
    pub direction: Option<Direction>,
    /// The provider's message id.
    pub external_id: Option<String>,
    /// `sent_at >= this`.
    pub sent_after: Option<DateTime<Utc>>,
    /// `sent_at < this`.
    pub sent_before: Option<DateTime<Utc>>,
    /// Case-insensitive substring of `text`.
    pub q: Option<String>,
    /// Include the provider's raw JSON.
    pub include_raw: bool,
}

/// What to read from the event feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only `seq > after`.
    pub after: i64,
    /// At most this many.
    pub limit: u32,
    /// Only these types (empty: all).
    pub types: Vec<EventType>,
    /// Only this account.
    pub account: Option<String>,
    /// Visible accounts.
    pub scope: AccountScope,
    /// Only `seq <= until` (a bound read before the query, so a reader can
    /// advance its cursor past events its filters skipped without skipping
    /// any committed later).
    pub until: Option<i64>,
}

/// What one ingest call changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Sessions seen for the first time.
    pub sessions_created: u64,
    /// Messages stored for the first time.
    pub messages_created: u64,
    /// Events written.
    pub events: u64,
}

/// The observable state of an account's sync worker (API: `sync`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// `idle`, `running`, `backoff` or `error`.
    pub state: String,
    /// Last time a provider call succeeded.
    #[serde(with = "chat_core::time::rfc3339::option")]
    pub last_success_at: Option<DateTime<Utc>>,
    /// Why it is failing, while it is.
    pub last_error: Option<SyncError>,
    /// How far behind the provider the stored data is.
    pub lag_seconds: Option<i64>,
    /// The current backfill, if any ran.
    pub backfill: Option<Backfill>,
}

/// A sync failure as shown in the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncError {
    /// What went wrong.
    pub message: String,
    /// When.
    #[serde(with = "chat_core::time::rfc3339")]
    pub at: DateTime<Utc>,
}

/// Progress of a backfill run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backfill {
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Window start.
    #[serde(with = "chat_core::time::rfc3339")]
    pub from: DateTime<Utc>,
    /// Window end.
    #[serde(with = "chat_core::time::rfc3339")]
    pub to: DateTime<Utc>,
    /// Messages received so far, stored before or not.
    pub fetched: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// Everything stored about an account's sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncState {
    /// The observable part.
    pub status: SyncStatus,
    /// The provider cursor committed with the last rows (opaque).
    pub cursor: Option<String>,
    /// Customers added by backfills (ccmessaging).
    pub extra_customers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(order: Order, cursor: Option<String>) -> PageRequest {
        PageRequest {
            limit: 10,
            cursor,
            order,
        }
    }

    #[test]
    fn cursor_round_trips_and_is_tied_to_its_order() {
        let asc = req(Order::Asc, None);
        let c = asc.encode(Keyset { at: -5, pk: 42 });
        assert_eq!(
            req(Order::Asc, Some(c.clone())).keyset().unwrap(),
            Some(Keyset { at: -5, pk: 42 })
        );
        assert!(matches!(
            req(Order::Desc, Some(c)).keyset(),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn garbage_cursors_are_invalid_not_panics() {
        for junk in [
            "",
            "x",
            "!!!",
            "djF8YXwxfA",
            "djF8YXwxfDJ8Mw",
            "djF8YXxhfGI",
        ] {
            assert!(
                matches!(
                    req(Order::Asc, Some(junk.into())).keyset(),
                    Err(StoreError::Invalid(_))
                ),
                "{junk}"
            );
        }
    }
}

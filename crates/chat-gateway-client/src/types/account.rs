//! Configured provider accounts and their sync state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{wire_enum, Provider};

wire_enum! {
    /// What an account's provider can do; the gateway answers 422
    /// `unsupported_operation` for anything else.
    pub enum Capability {
        /// Real-time receive.
        Live = "live",
        /// Message history.
        History = "history",
        /// Listing sessions.
        ListSessions = "list_sessions",
        /// Replying in a session.
        Send = "send",
        /// Starting a session with a customer.
        Outreach = "outreach",
        /// Closing a session.
        Close = "close",
        /// Restarting a closed session.
        Restart = "restart",
        /// Handing a session to another agent.
        Transfer = "transfer",
    }
}

wire_enum! {
    /// What an account's sync worker is doing.
    pub enum SyncState {
        /// Waiting for the next poll.
        Idle = "idle",
        /// Fetching now.
        Running = "running",
        /// The provider failed; waiting before the next try.
        Backoff = "backoff",
        /// The provider keeps failing; see `last_error`.
        Error = "error",
    }
}

wire_enum! {
    /// Where a backfill stands.
    pub enum BackfillState {
        /// Fetching.
        Running = "running",
        /// Finished.
        Done = "done",
        /// Stopped on an error; see `error`.
        Failed = "failed",
    }
}

/// A provider account from the gateway's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The configured name (`account` on every object).
    pub name: String,
    /// Its provider.
    pub provider: Provider,
    /// What the provider supports.
    pub capabilities: Vec<Capability>,
    /// How its sync is going.
    pub sync: SyncStatus,
}

/// The last sync failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncError {
    /// Why it failed.
    pub message: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// An account's sync state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Idle, running, backoff or error.
    pub state: SyncState,
    /// Last poll that worked.
    #[serde(default)]
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failure, while failing.
    #[serde(default)]
    pub last_error: Option<SyncError>,
    /// How far behind the provider the stored data is.
    #[serde(default)]
    pub lag_seconds: Option<u64>,
    /// The provider-side position (opaque).
    #[serde(default)]
    pub cursor: Option<String>,
    /// The current or last backfill.
    #[serde(default)]
    pub backfill: Option<Backfill>,
}

/// A history backfill's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backfill {
    /// Running, done or failed.
    pub state: BackfillState,
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end.
    pub to: DateTime<Utc>,
    /// Messages received so far, stored before or not.
    pub fetched: u64,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// Body of `POST /v1/accounts/{name}/sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BackfillRequest {
    /// Window start (required by the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Window end; now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// ccmessaging only: limit the backfill to these customers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_ids: Option<Vec<String>>,
}

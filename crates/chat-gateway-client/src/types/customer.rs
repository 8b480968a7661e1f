//! Customers as seen across sessions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Provider;

/// Who a session's `customer` names, per account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The account.
    pub account: String,
    /// Its provider.
    pub provider: Provider,
    /// The provider's id of the customer.
    pub external_id: String,
    /// Latest known name.
    #[serde(default)]
    pub name: Option<String>,
    /// Latest known avatar.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Their sessions.
    pub session_count: u64,
    /// All messages in those sessions.
    pub message_count: u64,
    /// Earliest session start.
    pub first_seen_at: DateTime<Utc>,
    /// Latest activity.
    pub last_seen_at: DateTime<Utc>,
}

/// Answer of `DELETE /v1/customers/{account}/{external_id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedCustomer {
    /// Sessions deleted.
    pub sessions: u64,
    /// Messages deleted.
    pub messages: u64,
}

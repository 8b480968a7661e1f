//! The event feed's items.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{wire_enum, Provider};

wire_enum! {
    /// What happened.
    pub enum EventType {
        /// A new session.
        SessionOpened = "session.opened",
        /// A session's fields changed.
        SessionUpdated = "session.updated",
        /// A session was closed.
        SessionClosed = "session.closed",
        /// A closed session was opened again.
        SessionReopened = "session.reopened",
        /// A session went to another agent.
        SessionTransferred = "session.transferred",
        /// A new message.
        MessageCreated = "message.created",
        /// A sent message's delivery changed.
        MessageUpdated = "message.updated",
        /// A customer's data was erased.
        CustomerErased = "customer.erased",
    }
}

/// One change, in commit order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the feed: a decimal string; pass the last one seen as `after`.
    pub seq: String,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The account concerned.
    pub account: String,
    /// Its provider.
    pub provider: Provider,
    /// The session concerned (null for `customer.erased`).
    #[serde(default)]
    pub session_id: Option<String>,
    /// The message concerned, for `message.*`.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The Session or Message after the change (for `customer.erased`,
    /// `{"account", "external_id"}`); decode it with [`Event::session`] or
    /// [`Event::message`].
    pub data: serde_json::Value,
    /// Each changed top-level field's value before the change; null on
    /// `*.opened` and `message.created`.
    #[serde(default)]
    pub changes: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Event {
    /// `seq` as a number (they compare as numbers, not as strings).
    pub fn seq_number(&self) -> Option<u64> {
        self.seq.parse().ok()
    }

    /// `data` as a Session, for `session.*` events.
    pub fn session(&self) -> Option<super::Session> {
        self.event_type
            .as_str()
            .starts_with("session.")
            .then(|| serde_json::from_value(self.data.clone()).ok())
            .flatten()
    }

    /// `data` as a Message, for `message.*` events.
    pub fn message(&self) -> Option<super::Message> {
        self.event_type
            .as_str()
            .starts_with("message.")
            .then(|| serde_json::from_value(self.data.clone()).ok())
            .flatten()
    }
}

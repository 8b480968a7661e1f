//! Change events: what the feed, SSE and webhooks carry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What changed. Each real change to a session or message writes exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A session was seen for the first time.
    #[serde(rename = "session.opened")]
    SessionOpened,
    /// A session's facts changed (agent, rating, counters…).
    #[serde(rename = "session.updated")]
    SessionUpdated,
    /// A session ended.
    #[serde(rename = "session.closed")]
    SessionClosed,
    /// A closed session became active again.
    #[serde(rename = "session.reopened")]
    SessionReopened,
    /// A session was handed to another agent.
    #[serde(rename = "session.transferred")]
    SessionTransferred,
    /// A new message was stored.
    #[serde(rename = "message.created")]
    MessageCreated,
    /// A gateway-sent message's delivery status changed.
    #[serde(rename = "message.updated")]
    MessageUpdated,
    /// A customer's data was erased on request; `data` names whom
    /// (`account`, `external_id`) so downstream systems erase them too.
    #[serde(rename = "customer.erased")]
    CustomerErased,
}

impl EventType {
    /// Every type, for validating `?types=` and webhook filters.
    pub const ALL: [EventType; 8] = [
        EventType::SessionOpened,
        EventType::SessionUpdated,
        EventType::SessionClosed,
        EventType::SessionReopened,
        EventType::SessionTransferred,
        EventType::MessageCreated,
        EventType::MessageUpdated,
        EventType::CustomerErased,
    ];

    /// The wire name (`message.created`…).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SessionOpened => "session.opened",
            EventType::SessionUpdated => "session.updated",
            EventType::SessionClosed => "session.closed",
            EventType::SessionReopened => "session.reopened",
            EventType::SessionTransferred => "session.transferred",
            EventType::MessageCreated => "message.created",
            EventType::MessageUpdated => "message.updated",
            EventType::CustomerErased => "customer.erased",
        }
    }

    /// Parses a wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether `data` holds a message (else a session).
    pub fn is_message(self) -> bool {
        matches!(self, EventType::MessageCreated | EventType::MessageUpdated)
    }
}

/// One entry of the event feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the feed: a decimal string, growing in commit order.
    pub seq: String,
    /// What changed.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the change was committed.
    #[serde(with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
    /// Account of the object.
    pub account: String,
    /// Provider of the account.
    pub provider: String,
    /// Session concerned; empty for events about no session
    /// (`customer.erased`), written as `null` on the wire.
    #[serde(with = "empty_as_null")]
    pub session_id: String,
    /// Message concerned, for message events.
    pub message_id: Option<String>,
    /// The session or message as it was after the change.
    pub data: Value,
}

/// An empty string on the wire as `null`, and back.
mod empty_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
        if value.is_empty() {
            s.serialize_none()
        } else {
            s.serialize_str(value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_wire_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            let json = serde_json::to_value(t).unwrap();
            assert_eq!(json, Value::String(t.as_str().to_string()));
        }
        assert_eq!(EventType::parse("message.deleted"), None);
    }
}

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
    /// Each top-level field of `data` the change altered, mapped to its value
    /// before (nested objects whole), so a subscriber can act on what
    /// changed without keeping its own copy. `None` (serialised as `null`)
    /// on `session.opened` and `message.created`, which have no "before".
    #[serde(default)]
    pub changes: Option<Value>,
}

/// Fields never listed in [`Event::changes`]: bookkeeping every write moves
/// (`updated_at`), counters a new message moves and announces through its
/// own `message.created`, and the provider's original JSON.
pub const UNLISTED_FIELDS: [&str; 4] = ["updated_at", "message_count", "last_message_at", "raw"];

/// The `changes` object between two serialisations of one object: each
/// top-level field of `after` whose value differs from `before`, mapped to
/// its value in `before` (`null` where it was absent). Empty when nothing
/// listed changed, which callers take as "no event".
pub fn changes_between(before: &Value, after: &Value) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return out;
    };
    let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
    for key in keys {
        if UNLISTED_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let old = b.get(key).unwrap_or(&Value::Null);
        let new = a.get(key).unwrap_or(&Value::Null);
        if old != new && !out.contains_key(key) {
            out.insert(key.clone(), old.clone());
        }
    }
    out
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

    #[test]
    fn changes_list_previous_values_of_changed_fields_only() {
        let before = serde_json::json!({
            "status": "open", "closed_at": null, "agent": {"external_id": "A1", "name": "x"},
            "rating": "good", "updated_at": "a", "message_count": 1, "last_message_at": "t1"
        });
        let after = serde_json::json!({
            "status": "closed", "closed_at": "t9", "agent": {"external_id": "A1", "name": "y"},
            "rating": "good", "updated_at": "b", "message_count": 2, "last_message_at": "t2"
        });
        let c = changes_between(&before, &after);
        assert_eq!(
            Value::Object(c),
            serde_json::json!({"status": "open", "closed_at": null,
                "agent": {"external_id": "A1", "name": "x"}})
        );
        assert!(changes_between(&before, &before).is_empty());
    }

    #[test]
    fn an_event_always_carries_changes_even_when_null() {
        let e = Event {
            seq: "1".into(),
            event_type: EventType::MessageCreated,
            at: Utc::now(),
            account: "a".into(),
            provider: "spark".into(),
            session_id: "s".into(),
            message_id: None,
            data: Value::Null,
            changes: None,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert!(v.as_object().unwrap().contains_key("changes"));
        assert_eq!(v["changes"], Value::Null);
    }
}

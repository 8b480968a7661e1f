//! Kchat chats and messages to the core model, per `providers/kchat.md`.
//!
//! Pure functions over raw JSON, lenient by design: ids may be numbers or
//! strings, any field may be null. What cannot be mapped is reported as an
//! [`Issue`] for the caller to log, and never fails the answer.
//!
//! Chat: `status` `open`/`close` -> open/closed (`closed_at` = `end_at`);
//! `started_by` visitor/agent/system; the customer is `visitor_id` named by
//! the visitor's messages; the agent is `agent_id`; times are account-zone
//! wall clock. Message `type`s are listed in [`message`].

use chat_core::time::{local_to_utc, Tz};
use chat_core::{
    Card, Media, MessageKind, Participant, ProviderMessage, ProviderSession, Role, Sender,
    SessionChange, SessionStatus, StartedBy,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Something in an answer the mapping could not take as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Issue {
    /// A chat or message left out of the answer.
    Skipped {
        /// The chat's id, when known.
        chat_id: Option<String>,
        /// The message's id, for a message.
        message_id: Option<String>,
        /// Why.
        reason: &'static str,
    },
    /// An enum value this adapter does not know; kept in `raw`.
    UnknownValue {
        /// The wire field.
        field: &'static str,
        /// The value as sent.
        value: String,
    },
    /// A field that could not be read; the object is kept without it.
    BadField {
        /// The chat's id.
        chat_id: String,
        /// The wire field.
        field: &'static str,
        /// The value as sent.
        value: String,
    },
}

/// A list summary to a session, or `None` (reported) without an id.
pub(crate) fn map_summary(
    chat: &Value,
    tz: Tz,
    issues: &mut Vec<Issue>,
) -> Option<ProviderSession> {
    let Some(id) = text(chat, "id") else {
        issues.push(Issue::Skipped {
            chat_id: None,
            message_id: None,
            reason: "chat has no id",
        });
        return None;
    };
    Some(session(chat, id, tz, &[], issues))
}

/// A chat detail to one change holding every message it could map.
/// `requested_id` stands in when the chat does not carry its own id.
pub(crate) fn map_detail(
    chat: &Value,
    requested_id: &str,
    tz: Tz,
    issues: &mut Vec<Issue>,
) -> SessionChange {
    let id = text(chat, "id").unwrap_or_else(|| requested_id.to_string());
    let visitor_id = text(chat, "visitor_id");
    let messages: Vec<ProviderMessage> = chat
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| message(m, &id, visitor_id.as_deref(), tz, issues))
        .collect();
    SessionChange {
        session: session(chat, id, tz, &messages, issues),
        messages,
    }
}

/// The number of message items in a detail, mapped or not.
pub(crate) fn message_items(chat: &Value) -> usize {
    chat.get("messages")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// The session facts of a chat; `messages` (empty for summaries) name the
/// customer and the agent.
fn session(
    chat: &Value,
    id: String,
    tz: Tz,
    messages: &[ProviderMessage],
    issues: &mut Vec<Issue>,
) -> ProviderSession {
    let status = match text(chat, "status").as_deref() {
        None => None,
        Some("open") => Some(SessionStatus::Open),
        Some("close" | "closed") => Some(SessionStatus::Closed),
        Some(other) => {
            issues.push(Issue::UnknownValue {
                field: "status",
                value: other.to_string(),
            });
            None
        }
    };
    let started_by = match text(chat, "started_by").as_deref() {
        None => None,
        Some("visitor") => Some(StartedBy::Customer),
        Some("agent") => Some(StartedBy::Agent),
        Some("system") => Some(StartedBy::System),
        Some(other) => {
            issues.push(Issue::UnknownValue {
                field: "started_by",
                value: other.to_string(),
            });
            None
        }
    };
    let mut time = |field| local_time(chat, field, &id, tz, issues);
    let created_at = time("created_at");
    let assigned_at = time("assigned_at");
    let end_at = time("end_at");

    // The newest named message by time (then id), so the detail's message
    // order does not decide the name.
    let last_name = |role: Role, external_id: Option<&str>| {
        messages
            .iter()
            .filter(|m| m.sender.role == role && m.sender.name.is_some())
            .filter(|m| external_id.is_none() || m.sender.external_id.as_deref() == external_id)
            .max_by(|a, b| (a.sent_at, &a.external_id).cmp(&(b.sent_at, &b.external_id)))
            .and_then(|m| m.sender.name.clone())
    };
    let customer = Participant {
        external_id: text(chat, "visitor_id"),
        name: last_name(Role::Customer, None),
        avatar_url: None,
    };
    let agent_id = text(chat, "agent_id").filter(|a| a != "0");
    let agent = agent_id.map(|agent_id| Participant {
        name: last_name(Role::Agent, Some(&agent_id)),
        external_id: Some(agent_id),
        avatar_url: None,
    });

    let mut raw = chat.clone();
    if let Some(fields) = raw.as_object_mut() {
        // Each message keeps its own raw; the session's is the chat itself.
        fields.remove("messages");
    }
    ProviderSession {
        closed_at: end_at.filter(|_| status == Some(SessionStatus::Closed)),
        external_id: id,
        status,
        channel: None,
        customer: (!customer.is_empty()).then_some(customer),
        agent,
        started_by,
        rating: text(chat, "rating"),
        created_at,
        assigned_at,
        fingerprint: fingerprint(chat),
        raw: Some(raw),
    }
}

/// `message_count`, `status` and `end_at` as one comparable string: when it
/// is unchanged the detail is too. `None` when the chat has no
/// `message_count`, so a detail without one never overwrites the list's.
fn fingerprint(chat: &Value) -> Option<String> {
    let count = text(chat, "message_count")?;
    let status = text(chat, "status");
    let end_at = text(chat, "end_at");
    Some(format!(
        "{count}|{}|{}",
        status.as_deref().unwrap_or("-"),
        end_at.as_deref().unwrap_or("-")
    ))
}

/// An account-zone time field; unreadable values are reported and dropped.
fn local_time(
    chat: &Value,
    field: &'static str,
    chat_id: &str,
    tz: Tz,
    issues: &mut Vec<Issue>,
) -> Option<DateTime<Utc>> {
    let value = text(chat, field)?;
    match local_to_utc(&value, tz) {
        Ok(t) => Some(t),
        Err(_) => {
            issues.push(Issue::BadField {
                chat_id: chat_id.to_string(),
                field,
                value,
            });
            None
        }
    }
}

/// One message, or `None` (reported) without an id, a type or a readable
/// `created_at`.
///
/// - `chat.msg`: text; `user_id` set -> agent (outbound), else customer.
/// - `chat.upload`: image when `upload.type` starts with `image`, else
///   file; `media` from the upload; sender as for `chat.msg`.
/// - `chat.memberjoin`: system event `member_join`, `msg` as text.
/// - `chat.system`, `queue.waiting`, `visitor.notify`, `visitor.queue.fail`,
///   `agent.assign.fail`: system events named after the type.
/// - `chat.answer`, `chat.ai_send`: bot text; `chat.question`,
///   `chat.ai_receive`: customer text (the question to the bot).
/// - `chat.card`, `chat.custom`: card, filled from `msg` when it is a JSON
///   object, else `msg` as its description; sender as for `chat.msg`.
/// - anything else: a system event named after the type, reported.
fn message(
    m: &Value,
    chat_id: &str,
    visitor_id: Option<&str>,
    tz: Tz,
    issues: &mut Vec<Issue>,
) -> Option<ProviderMessage> {
    let skip = |message_id: Option<String>, reason| Issue::Skipped {
        chat_id: Some(chat_id.to_string()),
        message_id,
        reason,
    };
    let Some(id) = text(m, "id") else {
        issues.push(skip(None, "message has no id"));
        return None;
    };
    let Some(sent_at) = text(m, "created_at").and_then(|t| local_to_utc(&t, tz).ok()) else {
        issues.push(skip(Some(id), "message has no readable created_at"));
        return None;
    };
    let Some(kind_name) = text(m, "type") else {
        issues.push(skip(Some(id), "message has no type"));
        return None;
    };

    let name = text(m, "name");
    let msg = m
        .get("msg")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string);
    let user_id = text(m, "user_id").filter(|u| u != "0");
    let as_role = |role| Sender {
        role,
        external_id: None,
        name: name.clone(),
        avatar_url: None,
    };
    let agent_or_customer = || match &user_id {
        Some(user_id) => Sender {
            external_id: Some(user_id.clone()),
            ..as_role(Role::Agent)
        },
        None => Sender {
            external_id: visitor_id.map(str::to_string),
            ..as_role(Role::Customer)
        },
    };

    let mut out = ProviderMessage {
        external_id: id,
        session_external_id: chat_id.to_string(),
        sender: as_role(Role::System),
        kind: MessageKind::Text,
        text: msg.clone(),
        media: None,
        card: None,
        event: None,
        sent_at,
        received_at: None,
        raw: m.clone(),
    };
    match kind_name.as_str() {
        "chat.msg" => out.sender = agent_or_customer(),
        "chat.upload" => {
            out.sender = agent_or_customer();
            let upload = m.get("upload").filter(|u| u.is_object());
            let mime = upload.and_then(|u| text(u, "type"));
            out.kind = match mime.as_deref() {
                Some(t) if t.starts_with("image") => MessageKind::Image,
                _ => MessageKind::File,
            };
            out.media = upload.map(|u| Media {
                url: text(u, "url"),
                file_id: text(u, "id").or_else(|| text(m, "upload_id")),
                mime_type: mime,
                file_name: text(u, "name"),
                size_bytes: integer(u, "size"),
            });
        }
        "chat.memberjoin" => {
            out.kind = MessageKind::Event;
            out.event = Some("member_join".to_string());
        }
        "chat.system" | "queue.waiting" | "visitor.notify" | "visitor.queue.fail"
        | "agent.assign.fail" => {
            out.kind = MessageKind::Event;
            out.event = Some(kind_name);
        }
        "chat.answer" | "chat.ai_send" => out.sender = as_role(Role::Bot),
        "chat.question" | "chat.ai_receive" => {
            out.sender = Sender {
                external_id: visitor_id.map(str::to_string),
                ..as_role(Role::Customer)
            };
        }
        "chat.card" | "chat.custom" => {
            out.sender = agent_or_customer();
            out.kind = MessageKind::Card;
            out.text = None;
            out.card = msg.as_deref().map(card);
        }
        _ => {
            issues.push(Issue::UnknownValue {
                field: "message type",
                value: kind_name.clone(),
            });
            out.kind = MessageKind::Event;
            out.event = Some(kind_name);
        }
    }
    Some(out)
}

/// A card from `msg`: a JSON object's usual fields, else the text as its
/// description.
fn card(msg: &str) -> Card {
    let parsed: Option<Value> = serde_json::from_str(msg).ok().filter(Value::is_object);
    let Some(v) = parsed else {
        return Card {
            description: Some(msg.to_string()),
            ..Card::default()
        };
    };
    let first = |keys: &[&str]| keys.iter().find_map(|k| text(&v, k));
    Card {
        title: first(&["title", "name"]),
        description: first(&["description", "desc", "content", "text"]),
        media_file_id: first(&[
            "media_file_id",
            "mediaFileId",
            "image",
            "img",
            "pic_url",
            "thumb",
        ]),
        redirect_url: first(&["redirect_url", "redirectUrl", "url", "link"]),
    }
}

/// A field as text: a non-blank string or a number; else `None`.
fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A field as an integer: a number or a numeric string.
fn integer(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod order_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A closed chat whose visitor and agent write under changing names.
    fn chat(order: &[usize]) -> Value {
        let messages: Vec<Value> = (0..8)
            .map(|i| {
                let agent = i % 2 == 1;
                json!({
                    "id": 2600 + i,
                    "chat_id": 290,
                    "type": "chat.msg",
                    "name": if agent { format!("小王{i}") } else { format!("访客{i}") },
                    "msg": format!("第{i}条"),
                    "user_id": if agent { json!(2192) } else { json!(null) },
                    "is_read": 1,
                    "created_at": format!("2015-04-25 08:04:{:02}", 10 + i),
                    "upload": null,
                })
            })
            .collect();
        json!({
            "id": 290, "type": "chat", "started_by": "visitor", "status": "close",
            "agent_id": 2192, "visitor_id": 547,
            "created_at": "2015-04-25 08:04:12", "assigned_at": "2015-04-25 08:04:41",
            "end_at": "2015-04-30 09:55:01",
            "messages": order.iter().map(|i| messages[*i].clone()).collect::<Vec<_>>(),
        })
    }

    fn mapped(order: &[usize]) -> (ProviderSession, Vec<ProviderMessage>) {
        let tz = chat_core::time::parse_zone("Asia/Shanghai").unwrap();
        let mut issues = Vec::new();
        let change = map_detail(&chat(order), "290", tz, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        let mut messages = change.messages;
        messages.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        let mut session = change.session;
        session.raw = None;
        (session, messages)
    }

    #[test]
    fn the_newest_message_names_the_visitor_and_the_agent() {
        let (session, _) = mapped(&[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(session.customer.unwrap().name.as_deref(), Some("访客6"));
        assert_eq!(session.agent.unwrap().name.as_deref(), Some("小王7"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A detail whose messages come in any order, repeated or not, maps
        /// to the same session and the same messages.
        #[test]
        fn message_order_changes_nothing(
            order in Just((0..8).collect::<Vec<usize>>()).prop_shuffle(),
        ) {
            prop_assert_eq!(mapped(&order), mapped(&[0, 1, 2, 3, 4, 5, 6, 7]));
        }
    }
}

//! Spark answers to the chat-core model, and sends to Spark's wire format.
//!
//! Bad data never fails a whole answer: an operation without `SessionId`, or
//! a message without `Id`, without a readable `Type` or `CreateTime`, or with
//! a field of the wrong JSON type, is skipped with a warning naming the
//! session and message. Only an answer without an `Operation` list is
//! unreadable as a whole.

use chat_core::time::{local_to_utc, utc_to_local, Tz};
use chat_core::{
    LiveBatch, LiveMode, Media, MessageKind, Participant, ProviderMessage, ProviderSession, Role,
    SendReceipt, SendRequest, Sender, SessionChange,
};
use serde_json::Value;

use crate::client::{int_field, string_field, Field, SendBody};
use crate::error::Failure;
use crate::reading;

/// One query answer, mapped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MappedAnswer {
    /// What the gateway gets.
    pub(crate) batch: LiveBatch,
    /// Ids of messages skipped as unreadable. Spark re-delivers unacked
    /// messages on every live query, so these are acknowledged on the next
    /// query (they were logged; storing them would never succeed).
    pub(crate) skipped_ids: Vec<String>,
}

/// Maps a `/message/query` answer. `asked` is the version sent as
/// `LastVersion` (`None` in live mode).
pub(crate) fn map_query(
    answer: &Value,
    tz: Tz,
    asked: Option<&str>,
) -> Result<MappedAnswer, Failure> {
    let operations = answer
        .get("Operation")
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::Unreadable("query answer has no Operation list".into()))?;

    let mut out = MappedAnswer {
        batch: LiveBatch {
            changes: Vec::new(),
            mode: if asked.is_some() {
                LiveMode::History
            } else {
                LiveMode::Live
            },
            version: None,
            caught_up: reading::caught_up(asked.is_some(), operations.len()),
        },
        skipped_ids: Vec::new(),
    };
    let mut last_id: Option<String> = None;

    for (index, op) in operations.iter().enumerate() {
        let messages = op_messages(op, index);
        // Every message with an Id counts for the version, mapped or skipped:
        // a skipped message is processed too, and replaying it would never end.
        for message in messages {
            if let Some(id) = message_id(message) {
                last_id = Some(id);
            }
        }
        match map_operation(op, index, messages, tz, &mut out.skipped_ids) {
            Some(change) => out.batch.changes.push(change),
            None => out
                .skipped_ids
                .extend(messages.iter().filter_map(message_id)),
        }
    }

    out.batch.version = reading::next_version(asked, last_id.as_deref());
    Ok(out)
}

/// The `Message` list of an operation; absent, `null` or of the wrong type
/// reads as empty.
fn op_messages(op: &Value, index: usize) -> &[Value] {
    match op.get("Message") {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) => &[],
        Some(_) => {
            tracing::warn!(
                operation = index,
                session_id = %op_session_hint(op),
                "Spark operation has a Message that is not a list; its messages are ignored"
            );
            &[]
        }
    }
}

/// The session id of an operation for log lines, whatever its shape.
fn op_session_hint(op: &Value) -> String {
    string_field(op, "SessionId").ok().unwrap_or_default()
}

/// A message's `Id` when readable and non-empty.
fn message_id(message: &Value) -> Option<String> {
    string_field(message, "Id").ok().filter(|id| !id.is_empty())
}

/// One operation as a session change; `None` when it has no usable
/// `SessionId` (its messages are then skipped, and logged here).
fn map_operation(
    op: &Value,
    index: usize,
    messages: &[Value],
    tz: Tz,
    skipped_ids: &mut Vec<String>,
) -> Option<SessionChange> {
    let Some(obj) = op.as_object() else {
        tracing::warn!(
            operation = index,
            "Spark operation is not an object; skipped"
        );
        return None;
    };
    let session_id = match string_field(op, "SessionId") {
        Field::Present(id) if !id.is_empty() => id,
        other => {
            let ids: Vec<String> = messages.iter().filter_map(message_id).collect();
            tracing::warn!(
                operation = index,
                session_id = ?other.ok(),
                message_ids = ?ids,
                "Spark operation without a usable SessionId; skipped with its messages"
            );
            return None;
        }
    };

    let status = match int_field(op, "Type") {
        Field::Present(t) => {
            let status = reading::session_status(t);
            if status.is_none() {
                tracing::warn!(%session_id, op_type = t, "unknown Spark operation Type; status left alone");
            }
            status
        }
        Field::Absent | Field::Wrong => {
            tracing::warn!(%session_id, "Spark operation without a readable Type; status left alone");
            None
        }
    };
    let channel = match int_field(op, "SessionType") {
        Field::Present(t) => reading::channel(t).map(str::to_string),
        Field::Absent => None,
        Field::Wrong => {
            tracing::warn!(%session_id, "Spark SessionType is not a number; no channel");
            None
        }
    };

    let customer = participant(op, "FromId", "FromName", "FromImage");
    let agent = participant(op, "ToId", "ToName", "ToImage");
    let mut raw = obj.clone();
    raw.remove("Message");

    let mut mapped = Vec::with_capacity(messages.len());
    for message in messages {
        match map_message(message, &session_id, op, tz) {
            Ok(m) => mapped.push(m),
            Err(reason) => {
                let id = message_id(message);
                tracing::warn!(
                    %session_id,
                    message_id = id.as_deref().unwrap_or(""),
                    reason,
                    "Spark message skipped"
                );
                skipped_ids.extend(id);
            }
        }
    }

    Some(SessionChange {
        session: ProviderSession {
            external_id: session_id,
            status,
            channel,
            customer,
            agent,
            raw: Some(Value::Object(raw)),
            ..ProviderSession::default()
        },
        messages: mapped,
    })
}

/// A non-empty string field, or `None` (absent, empty or unreadable).
fn text_field(obj: &Value, key: &str) -> Option<String> {
    string_field(obj, key).ok().filter(|s| !s.is_empty())
}

/// A participant from three operation fields; `None` when all are empty.
fn participant(op: &Value, id: &str, name: &str, image: &str) -> Option<Participant> {
    let p = Participant {
        external_id: text_field(op, id),
        name: text_field(op, name),
        avatar_url: text_field(op, image),
    };
    (!p.is_empty()).then_some(p)
}

/// A message's author, from its operation's `From*` (customer) or `To*`
/// (agent) fields.
fn sender(role: Role, op: &Value) -> Sender {
    let (id, name, image) = match role {
        Role::Customer => ("FromId", "FromName", "FromImage"),
        Role::Agent => ("ToId", "ToName", "ToImage"),
        _ => return Sender::role_only(role),
    };
    Sender {
        role,
        external_id: text_field(op, id),
        name: text_field(op, name),
        avatar_url: text_field(op, image),
    }
}

/// One message; `Err` says why it must be skipped.
fn map_message(
    message: &Value,
    session_id: &str,
    op: &Value,
    tz: Tz,
) -> Result<ProviderMessage, &'static str> {
    if !message.is_object() {
        return Err("not an object");
    }
    let id = match string_field(message, "Id") {
        Field::Present(id) if !id.is_empty() => id,
        Field::Wrong => return Err("Id is not a string"),
        _ => return Err("no Id"),
    };
    let role = match int_field(message, "Type") {
        Field::Present(t) => {
            let role = reading::message_role(t);
            if !matches!(role, Role::Customer | Role::Agent) {
                tracing::warn!(session_id, message_id = %id, message_type = t,
                    "unknown Spark message Type; kept as a system message");
            }
            role
        }
        Field::Absent => return Err("no Type"),
        Field::Wrong => return Err("Type is not a number"),
    };
    let content = match string_field(message, "Content") {
        Field::Present(c) => Some(c),
        Field::Absent => None,
        Field::Wrong => return Err("Content is not a string"),
    };
    let content_type = match string_field(message, "ContentType") {
        Field::Present(ct) => ct,
        Field::Absent => String::new(),
        Field::Wrong => return Err("ContentType is not a string"),
    };
    let sent_at = match string_field(message, "CreateTime") {
        Field::Present(t) => {
            local_to_utc(&t, tz).map_err(|_| "CreateTime is not yyyy-MM-dd HH:mm:ss")?
        }
        Field::Absent => return Err("no CreateTime"),
        Field::Wrong => return Err("CreateTime is not a string"),
    };

    let (kind, text, media, event) = match reading::content_kind(content_type.trim()) {
        Some(MessageKind::Image) => (
            MessageKind::Image,
            None,
            Some(Media {
                url: content.filter(|c| !c.is_empty()),
                ..Media::default()
            }),
            None,
        ),
        Some(kind) => (kind, content, None, None),
        None => {
            tracing::warn!(session_id, message_id = %id, content_type = %content_type,
                "unknown Spark ContentType; kept as an event with its raw JSON");
            (
                MessageKind::Event,
                content,
                None,
                Some(reading::UNKNOWN_CONTENT_EVENT.to_string()),
            )
        }
    };

    Ok(ProviderMessage {
        external_id: id,
        session_external_id: session_id.to_string(),
        sender: sender(role, op),
        kind,
        text,
        media,
        card: None,
        event,
        sent_at,
        received_at: None,
        raw: message.clone(),
    })
}

/// The `/message/send` body for a request; refuses what Spark cannot carry.
pub(crate) fn send_body(req: &SendRequest, tz: Tz) -> Result<SendBody, Failure> {
    let content_type = reading::content_type_for(req.kind).ok_or_else(|| Failure::Invalid {
        code: "unsupported_content",
        message: format!("Spark cannot send {} messages", req.kind.as_str()),
    })?;
    let content = match req.kind {
        MessageKind::Image => req.media_url.as_deref(),
        _ => req.text.as_deref(),
    }
    .filter(|c| !c.is_empty())
    .ok_or_else(|| Failure::Invalid {
        code: "missing_content",
        message: format!("a {} send needs its content", req.kind.as_str()),
    })?;
    if req.kind == MessageKind::Text && content.chars().count() > reading::MAX_TEXT_CHARS {
        return Err(Failure::Invalid {
            code: "content_too_long",
            message: format!(
                "Spark text is at most {} characters",
                reading::MAX_TEXT_CHARS
            ),
        });
    }
    Ok(SendBody {
        session_id: req.session_external_id.clone().unwrap_or_default(),
        to_id: req.customer_id.clone(),
        content_type,
        content: content.to_string(),
        create_time: utc_to_local(req.created_at, tz),
    })
}

/// The receipt of an accepted send: Spark's `MessageId` (so the echo on the
/// live feed is recognised) and `SessionId` (the new one for outreach, else
/// the session sent into).
pub(crate) fn receipt(answer: &Value, req: &SendRequest) -> SendReceipt {
    let message_external_id = text_field(answer, "MessageId");
    if message_external_id.is_none() {
        tracing::warn!(
            session_id = req.session_external_id.as_deref().unwrap_or(""),
            "Spark accepted a send without a MessageId; its echo will not be matched"
        );
    }
    SendReceipt {
        message_external_id,
        session_external_id: text_field(answer, "SessionId")
            .or_else(|| req.session_external_id.clone().filter(|s| !s.is_empty())),
    }
}

#[cfg(test)]
mod tests;

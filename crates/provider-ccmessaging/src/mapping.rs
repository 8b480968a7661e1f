//! ccmessaging history items to the core model, per `providers/ccmessaging.md`.
//!
//! Pure functions: what cannot be mapped is reported as an [`Issue`] for the
//! caller to log, and never fails the page.
//!
//! - `sourceType`: `USER`/`CUSTOMER` customer (inbound), `AGENT` agent,
//!   `ROBOT` bot, `SYSTEM` system; unknown: system.
//! - `controlType`: `CHAT` (or none) a content message; `CONNECT`,
//!   `DISCONNECT`, `TRANS2AGENT`, `INPUT`, `READ` events `connect`,
//!   `disconnect`, `transfer_to_agent`, `typing`, `read`; unknown: an event
//!   named after the value.
//! - Session: `callId`, else `chatId`/`chat_id`, else `{userId}:{yyyy-MM-dd}`
//!   (UTC day of `sendTime`). Consecutive items of one session form one
//!   [`SessionChange`]; a `TRANS2AGENT` starts a new change carrying
//!   `assigned_at` (first-response timing starts there) and a `DISCONNECT`
//!   ends its change, which carries `status: closed` and `closed_at`.

use chat_core::time::epoch_ms_to_utc;
use chat_core::{
    Card, Media, MessageKind, Participant, ProviderMessage, ProviderSession, Role, Sender,
    SessionChange, SessionStatus,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::html::html_to_text;

/// Something in a page the mapping could not take as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Issue {
    /// An item left out of the page entirely.
    Skipped {
        /// Its `id`, when it has one.
        id: Option<String>,
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
    /// A field that could not be read; the message is kept without it.
    BadField {
        /// The item's `id`.
        id: String,
        /// The wire field.
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// What a `controlType` does to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    /// A content message.
    Chat,
    /// `CONNECT`, `INPUT`, `READ` or an unknown value: an event, no session change.
    Event,
    /// `TRANS2AGENT`: the assignment (and first-response timing) starts.
    Transfer,
    /// `DISCONNECT`: the session ends.
    Disconnect,
}

/// One mapped item and what it says about its session.
#[derive(Debug)]
struct Item {
    session_key: String,
    control: Control,
    channel: Option<String>,
    message: ProviderMessage,
}

/// Maps one page of `messageList` items of `user_id` into session changes
/// in provider order.
pub(crate) fn map_history(
    items: &[Value],
    user_id: &str,
    default_channel: &str,
    issues: &mut Vec<Issue>,
) -> Vec<SessionChange> {
    let mut changes = Vec::new();
    let mut current: Option<SessionChange> = None;
    for raw in items {
        let Some(item) = map_item(raw, user_id, issues) else {
            continue;
        };
        let starts_new = match &current {
            None => true,
            Some(change) => {
                change.session.external_id != item.session_key
                    || (item.control == Control::Transfer && !change.messages.is_empty())
            }
        };
        if starts_new {
            changes.extend(current.take());
        }
        let change = current.get_or_insert_with(|| new_change(&item, user_id));
        let ends = item.control == Control::Disconnect;
        add_item(change, item);
        if ends {
            changes.extend(current.take());
        }
    }
    changes.extend(current);
    fill_gaps(&mut changes, default_channel);
    changes
}

/// An empty change for the item's session; the customer is always the
/// queried user.
fn new_change(item: &Item, user_id: &str) -> SessionChange {
    SessionChange {
        session: ProviderSession {
            external_id: item.session_key.clone(),
            customer: Some(Participant {
                external_id: Some(user_id.to_string()),
                name: None,
                avatar_url: None,
            }),
            ..ProviderSession::default()
        },
        messages: Vec::new(),
    }
}

/// Facts a change lacks but the page knows: the configured channel when no
/// item named one, and the customer's latest nickname and avatar in the
/// page when none of the change's own items were the customer's (one user
/// is the customer of every session in the page).
fn fill_gaps(changes: &mut [SessionChange], default_channel: &str) {
    let latest = |pick: fn(&Participant) -> &Option<String>| {
        changes
            .iter()
            .rev()
            .filter_map(|c| c.session.customer.as_ref())
            .find_map(|p| pick(p).clone())
    };
    let name = latest(|p| &p.name);
    let avatar = latest(|p| &p.avatar_url);
    for change in changes.iter_mut() {
        let session = &mut change.session;
        if session.channel.is_none() {
            session.channel = Some(default_channel.to_lowercase());
        }
        if let Some(customer) = session.customer.as_mut() {
            if customer.name.is_none() && customer.avatar_url.is_none() {
                customer.name.clone_from(&name);
                customer.avatar_url.clone_from(&avatar);
            }
        }
    }
}

/// Folds one item's facts into its change and appends its message.
fn add_item(change: &mut SessionChange, item: Item) {
    let session = &mut change.session;
    let at = item.message.sent_at;
    session.created_at = Some(session.created_at.map_or(at, |t| t.min(at)));
    if session.channel.is_none() {
        session.channel = item.channel;
    }
    match item.control {
        Control::Transfer => session.assigned_at = Some(at),
        Control::Disconnect => {
            session.status = Some(SessionStatus::Closed);
            session.closed_at = Some(at);
        }
        Control::Chat | Control::Event => {}
    }
    let sender = &item.message.sender;
    if sender.role == Role::Customer {
        if let Some(customer) = session.customer.as_mut() {
            if sender.name.is_some() {
                customer.name.clone_from(&sender.name);
            }
            if sender.avatar_url.is_some() {
                customer.avatar_url.clone_from(&sender.avatar_url);
            }
        }
    }
    change.messages.push(item.message);
}

/// One item to a message, or `None` (reported) when it lacks `id` or `sendTime`.
fn map_item(raw: &Value, user_id: &str, issues: &mut Vec<Issue>) -> Option<Item> {
    let id = text(raw, "id");
    let Some(id) = id else {
        issues.push(Issue::Skipped {
            id: None,
            reason: "no id",
        });
        return None;
    };
    let Some(sent_at) = time(raw, "sendTime") else {
        issues.push(Issue::Skipped {
            id: Some(id),
            reason: "no readable sendTime",
        });
        return None;
    };
    let item_user = text(raw, "userId").unwrap_or_else(|| user_id.to_string());
    let session_key = text(raw, "callId")
        .or_else(|| text(raw, "chatId"))
        .or_else(|| text(raw, "chat_id"))
        .unwrap_or_else(|| format!("{item_user}:{}", sent_at.format("%Y-%m-%d")));

    let role = role(text(raw, "sourceType").as_deref(), issues);
    let sender = Sender {
        role,
        external_id: (role == Role::Customer).then(|| item_user.clone()),
        name: text(raw, "senderNickname"),
        avatar_url: text(raw, "senderAvatar"),
    };

    let content = raw.get("content").and_then(Value::as_str);
    let (control, event) = control(text(raw, "controlType").as_deref(), issues);
    let body = match control {
        Control::Chat => content_of(text(raw, "mediaType").as_deref(), content, &id, issues),
        _ => Body {
            kind: MessageKind::Event,
            text: content.map(html_to_text).filter(|t| !t.is_empty()),
            event,
            ..Body::default()
        },
    };

    let message = ProviderMessage {
        external_id: id,
        session_external_id: session_key.clone(),
        sender,
        kind: body.kind,
        text: body.text,
        media: body.media,
        card: body.card,
        event: body.event,
        sent_at,
        received_at: time(raw, "receiveTime"),
        raw: raw.clone(),
    };
    Some(Item {
        session_key,
        control,
        channel: text(raw, "channel").map(|c| c.to_lowercase()),
        message,
    })
}

/// `sourceType` to the sender's role; none given reads as the system.
fn role(source: Option<&str>, issues: &mut Vec<Issue>) -> Role {
    let Some(source) = source else {
        return Role::System;
    };
    match source.trim().to_ascii_uppercase().as_str() {
        "USER" | "CUSTOMER" => Role::Customer,
        "AGENT" => Role::Agent,
        "ROBOT" => Role::Bot,
        "SYSTEM" => Role::System,
        _ => {
            issues.push(Issue::UnknownValue {
                field: "sourceType",
                value: source.to_string(),
            });
            Role::System
        }
    }
}

/// `controlType` to what the item does and its event name; none given
/// reads as `CHAT`.
fn control(control: Option<&str>, issues: &mut Vec<Issue>) -> (Control, Option<String>) {
    let Some(control) = control else {
        return (Control::Chat, None);
    };
    let (what, event) = match control.trim().to_ascii_uppercase().as_str() {
        "CHAT" => return (Control::Chat, None),
        "CONNECT" => (Control::Event, "connect"),
        "DISCONNECT" => (Control::Disconnect, "disconnect"),
        "TRANS2AGENT" => (Control::Transfer, "transfer_to_agent"),
        "INPUT" => (Control::Event, "typing"),
        "READ" => (Control::Event, "read"),
        _ => {
            issues.push(Issue::UnknownValue {
                field: "controlType",
                value: control.to_string(),
            });
            return (Control::Event, Some(control.trim().to_lowercase()));
        }
    };
    (what, Some(event.to_string()))
}

/// The content fields of a message.
#[derive(Debug)]
struct Body {
    kind: MessageKind,
    text: Option<String>,
    media: Option<Media>,
    card: Option<Card>,
    /// Set only for a content item whose `mediaType` is unknown.
    event: Option<String>,
}

impl Default for Body {
    fn default() -> Self {
        Body {
            kind: MessageKind::Text,
            text: None,
            media: None,
            card: None,
            event: None,
        }
    }
}

/// A `CHAT` item's `mediaType` and `content` to kind and content; none
/// given reads as `TEXT`.
fn content_of(
    media_type: Option<&str>,
    content: Option<&str>,
    id: &str,
    issues: &mut Vec<Issue>,
) -> Body {
    let media_type = media_type.unwrap_or("TEXT");
    let content = content.map(str::trim).filter(|c| !c.is_empty());
    let media_body = |kind, media| Body {
        kind,
        media: Some(media),
        ..Body::default()
    };
    match media_type.trim().to_ascii_uppercase().as_str() {
        "TEXT" => Body {
            text: content.map(html_to_text).filter(|t| !t.is_empty()),
            ..Body::default()
        },
        "IMAGE" => media_body(MessageKind::Image, object_media(content)),
        "AUDIO" => media_body(MessageKind::Audio, object_media(content)),
        "VIDEO" => media_body(MessageKind::Video, object_media(content)),
        "FILE" => media_body(MessageKind::File, file_media(content)),
        "FILE_IMAGE" => media_body(MessageKind::Image, key_ext_media(content)),
        "FILE_VIDEO" => media_body(MessageKind::Video, key_ext_media(content)),
        "WEBCARD" => Body {
            kind: MessageKind::Card,
            card: content.and_then(|c| match web_card(c) {
                Ok(card) => Some(card),
                Err(reason) => {
                    issues.push(Issue::BadField {
                        id: id.to_string(),
                        field: "content",
                        reason,
                    });
                    None
                }
            }),
            ..Body::default()
        },
        "LOCATE" => Body {
            kind: MessageKind::Location,
            text: content.map(html_to_text).filter(|t| !t.is_empty()),
            ..Body::default()
        },
        _ => {
            issues.push(Issue::UnknownValue {
                field: "mediaType",
                value: media_type.to_string(),
            });
            Body {
                kind: MessageKind::Event,
                event: Some(media_type.trim().to_lowercase()),
                ..Body::default()
            }
        }
    }
}

/// IMAGE/AUDIO/VIDEO: the content is an objectKey. The upload API's
/// `"objectKey,ext"` form is accepted too, its extension giving the MIME type.
fn object_media(content: Option<&str>) -> Media {
    match content.and_then(|c| c.rsplit_once(',')) {
        Some((_, ext)) if is_extension(ext) => key_ext_media(content),
        _ => Media {
            file_id: content.map(str::to_string),
            ..Media::default()
        },
    }
}

/// FILE_IMAGE/FILE_VIDEO: `"objectKey,ext"`.
fn key_ext_media(content: Option<&str>) -> Media {
    let Some(content) = content else {
        return Media::default();
    };
    match content.rsplit_once(',') {
        Some((key, ext)) => Media {
            file_id: non_empty(key),
            mime_type: mime_type(ext),
            ..Media::default()
        },
        None => Media {
            file_id: Some(content.to_string()),
            ..Media::default()
        },
    }
}

/// FILE: `"fileName,fileSize,objectKey,fileType"`. Read from the right, so
/// a file name holding commas stays whole; it may be empty.
fn file_media(content: Option<&str>) -> Media {
    let Some(content) = content else {
        return Media::default();
    };
    let mut parts = content.rsplitn(4, ',');
    let file_type = parts.next();
    let (key, size, name) = (parts.next(), parts.next(), parts.next());
    match (name, size, key, file_type) {
        (Some(name), Some(size), Some(key), Some(file_type)) => Media {
            file_id: non_empty(key),
            file_name: non_empty(name),
            size_bytes: size.trim().parse().ok(),
            mime_type: mime_type(file_type),
            url: None,
        },
        // Not the documented shape: keep it whole as the file handle.
        _ => Media {
            file_id: Some(content.to_string()),
            ..Media::default()
        },
    }
}

/// WEBCARD: a JSON string `{title, description, mediaFileId, mediaFileType, redirectUrl}`.
fn web_card(content: &str) -> Result<Card, String> {
    let card: Value =
        serde_json::from_str(content).map_err(|e| format!("WEBCARD is not JSON: {e}"))?;
    if !card.is_object() {
        return Err("WEBCARD is not a JSON object".to_string());
    }
    Ok(Card {
        title: text(&card, "title"),
        description: text(&card, "description"),
        media_file_id: text(&card, "mediaFileId"),
        redirect_url: text(&card, "redirectUrl"),
    })
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// A bare file extension (`jpg`, `mp4`), as opposed to part of a key.
fn is_extension(s: &str) -> bool {
    let s = s.trim();
    (1..=5).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A MIME type from an extension (`jpg`, `.PDF`) or one already given
/// (`image/png`).
fn mime_type(ext: &str) -> Option<String> {
    let ext = ext.trim().trim_start_matches('.').to_ascii_lowercase();
    if ext.contains('/') {
        return Some(ext);
    }
    let mime = match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "amr" => "audio/amr",
        "wav" => "audio/wav",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "avi" => "video/x-msvideo",
        "webm" => "video/webm",
        "3gp" => "video/3gpp",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "zip" => "application/zip",
        "rar" => "application/vnd.rar",
        "json" => "application/json",
        _ => return None,
    };
    Some(mime.to_string())
}

/// A field as text: a non-blank string or a number; else `None`.
fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An epoch-milliseconds field (number or numeric string); zero or
/// negative counts as absent.
fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    let ms = match v.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    (ms > 0).then(|| epoch_ms_to_utc(ms).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_content_is_read_from_the_right() {
        let m = file_media(Some("report, final.pdf,2048,obj-1,pdf"));
        assert_eq!(m.file_name.as_deref(), Some("report, final.pdf"));
        assert_eq!(m.size_bytes, Some(2048));
        assert_eq!(m.file_id.as_deref(), Some("obj-1"));
        assert_eq!(m.mime_type.as_deref(), Some("application/pdf"));

        let m = file_media(Some(",10,obj-2,docx"));
        assert_eq!(m.file_name, None);
        assert_eq!(m.file_id.as_deref(), Some("obj-2"));

        let m = file_media(Some("just-a-key"));
        assert_eq!(m.file_id.as_deref(), Some("just-a-key"));
        assert_eq!(m.file_name, None);
    }

    #[test]
    fn key_and_extension_give_a_mime_type() {
        let m = key_ext_media(Some("obj-3,PNG"));
        assert_eq!(m.file_id.as_deref(), Some("obj-3"));
        assert_eq!(m.mime_type.as_deref(), Some("image/png"));
        assert_eq!(key_ext_media(Some("obj-4,weird")).mime_type, None);
        let m = object_media(Some("obj-5"));
        assert_eq!(m.file_id.as_deref(), Some("obj-5"));
        let m = object_media(Some("obj-6,mp3"));
        assert_eq!(m.file_id.as_deref(), Some("obj-6"));
        assert_eq!(m.mime_type.as_deref(), Some("audio/mpeg"));
    }
}

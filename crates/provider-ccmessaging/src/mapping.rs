//! ccmessaging history items to the core model, per `providers/ccmessaging.md`.
//!
//! Pure functions over a page plus the adapter's [`Recall`]: what cannot be
//! mapped is reported as an [`Issue`] for the caller to log, and never fails
//! the page.
//!
//! - `sourceType`: `USER`/`CUSTOMER` customer (inbound), `AGENT` agent,
//!   `ROBOT` bot, `SYSTEM` system; unknown: system.
//! - `controlType`: `CHAT` (or none) a content message; `CONNECT`,
//!   `DISCONNECT`, `TRANS2AGENT`, `INPUT`, `READ` events `connect`,
//!   `disconnect`, `transfer_to_agent`, `typing`, `read`; unknown: an event
//!   named after the value.
//! - Session: `callId`, else `chatId`/`chat_id`, else `{userId}:{yyyy-MM-dd}`
//!   (UTC day of `sendTime`). Consecutive items of one session form one
//!   [`SessionChange`]; a `TRANS2AGENT` starts a new change and a
//!   `DISCONNECT` ends its change, which carries `status: closed` and
//!   `closed_at`.
//! - The customer's name and avatar, `assigned_at` (the first
//!   `TRANS2AGENT`) and the agent (the newest `AGENT` sender) come from
//!   [`Recall`], so re-reading items in any order reports the same facts.
//! - `senderAvatar` is resolved against the account's `base_url`.

use chat_core::links::absolute_url;
use chat_core::time::epoch_ms_to_utc;
use chat_core::{
    Card, Media, MessageKind, Participant, ProviderMessage, ProviderSession, Role, Sender,
    SessionChange, SessionStatus,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use url::Url;

use crate::html::html_to_text;
use crate::recall::{Recall, Seen};

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

/// Where a page is mapped: the queried customer and the account's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageContext<'a> {
    /// The queried `userId`, the customer of every session in the page.
    pub user_id: &'a str,
    /// The configured channel type, for sessions whose items name none.
    pub default_channel: &'a str,
    /// The account's `base_url`, for relative avatars.
    pub base_url: &'a Url,
}

/// Maps one page of `messageList` items into session changes in provider
/// order, first folding the page into `recall`.
pub(crate) fn map_history(
    items: &[Value],
    ctx: PageContext<'_>,
    recall: &mut Recall,
    issues: &mut Vec<Issue>,
) -> Vec<SessionChange> {
    let user_id = ctx.user_id;
    let mapped: Vec<Item> = items
        .iter()
        .filter_map(|raw| map_item(raw, user_id, ctx.base_url, issues))
        .collect();
    for item in &mapped {
        let sender = &item.message.sender;
        recall.learn(Seen {
            id: &item.message.external_id,
            session: &item.session_key,
            user_id,
            at: item.message.sent_at,
            role: sender.role,
            name: sender.name.as_deref(),
            avatar_url: sender.avatar_url.as_deref(),
            transfer: item.control == Control::Transfer,
            disconnect: item.control == Control::Disconnect,
        });
    }
    let mut changes = Vec::new();
    let mut current: Option<SessionChange> = None;
    for item in mapped {
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
    for change in &mut changes {
        if change.session.channel.is_none() {
            change.session.channel = Some(ctx.default_channel.to_lowercase());
        }
        recall.apply(change, user_id);
    }
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

/// Folds one item's facts into its change and appends its message.
fn add_item(change: &mut SessionChange, item: Item) {
    let session = &mut change.session;
    let at = item.message.sent_at;
    session.created_at = Some(session.created_at.map_or(at, |t| t.min(at)));
    if session.channel.is_none() {
        session.channel = item.channel;
    }
    if item.control == Control::Disconnect {
        session.status = Some(SessionStatus::Closed);
        session.closed_at = Some(at);
    }
    change.messages.push(item.message);
}

/// One item to a message, or `None` (reported) when it lacks `id` or `sendTime`.
fn map_item(raw: &Value, user_id: &str, base_url: &Url, issues: &mut Vec<Issue>) -> Option<Item> {
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
        avatar_url: text(raw, "senderAvatar").and_then(|a| absolute_url(base_url, &a)),
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

/// Extensions [`mime_type`] knows, most usual first for each type, so a
/// MIME type can be turned back into the `fileType` downloads ask for.
const KNOWN_EXTENSIONS: [&str; 29] = [
    "jpg", "jpeg", "png", "gif", "bmp", "webp", "svg", "mp3", "amr", "wav", "m4a", "aac", "ogg",
    "mp4", "mov", "avi", "webm", "3gp", "txt", "csv", "pdf", "doc", "docx", "xls", "xlsx", "ppt",
    "pptx", "zip", "json",
];

/// The `fileType` to ask `downloadFileStream` for: the file name's
/// extension, else one matching the MIME type, else the usual one for the
/// message kind.
pub(crate) fn file_type(media: &chat_core::Media, kind: MessageKind) -> String {
    let from_name = media
        .file_name
        .as_deref()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, ext)| ext.trim().to_ascii_lowercase())
        .filter(|ext| is_extension(ext));
    let from_mime = || {
        let mime = media.mime_type.as_deref()?;
        KNOWN_EXTENSIONS
            .iter()
            .find(|ext| mime_type(ext).as_deref() == Some(mime))
            .map(|ext| (*ext).to_string())
    };
    from_name.or_else(from_mime).unwrap_or_else(|| {
        match kind {
            MessageKind::Image => "jpg",
            MessageKind::Audio => "mp3",
            MessageKind::Video => "mp4",
            _ => "",
        }
        .to_string()
    })
}

/// A MIME type from an extension (`jpg`, `.PDF`) or one already given
/// (`image/png`).
pub(crate) fn mime_type(ext: &str) -> Option<String> {
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

    #[test]
    fn downloads_ask_for_the_files_own_type() {
        let named = file_media(Some("report.PDF,10,obj-1,pdf"));
        assert_eq!(file_type(&named, MessageKind::File), "pdf");
        let typed = key_ext_media(Some("obj-2,png"));
        assert_eq!(file_type(&typed, MessageKind::Image), "png");
        let bare = object_media(Some("obj-3"));
        assert_eq!(file_type(&bare, MessageKind::Audio), "mp3");
        assert_eq!(file_type(&bare, MessageKind::File), "");
    }
}

#[cfg(test)]
mod order_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const USER: &str = "u1";

    /// A session's history as the provider would answer it, oldest first:
    /// customer items under changing nicknames, a system item named
    /// "系统", two agents, and two hand-overs.
    fn history() -> Vec<Value> {
        let item = |i: i64, control: &str, source: &str, nick: &str, avatar: &str| {
            json!({
                "id": format!("m{i:02}"),
                "userId": USER,
                "callId": "call-1",
                "controlType": control,
                "sourceType": source,
                "mediaType": if control == "CHAT" { json!("TEXT") } else { json!(null) },
                "content": format!("<p>item {i}</p>"),
                "senderNickname": nick,
                "senderAvatar": avatar,
                "sendTime": 1_705_457_000_000_i64 + i * 1000,
            })
        };
        vec![
            item(1, "CONNECT", "USER", "Michael", "../../image/user1.png"),
            item(2, "CHAT", "ROBOT", "智能助手", "../../image/robot.png"),
            item(3, "TRANS2AGENT", "SYSTEM", "系统", "../../image/agent.png"),
            item(4, "CHAT", "AGENT", "小王", "../../image/agent.png"),
            item(5, "CHAT", "USER", "Michael Brown", "../../image/user2.png"),
            item(6, "DISCONNECT", "SYSTEM", "系统", "../../image/agent.png"),
            item(7, "TRANS2AGENT", "SYSTEM", "系统", "../../image/agent.png"),
            item(8, "CHAT", "AGENT", "小李", "../../image/agent2.png"),
            item(9, "DISCONNECT", "SYSTEM", "系统", "../../image/agent.png"),
        ]
    }

    /// Maps `pages` in turn with one memory, then the newest item alone
    /// (which says nothing of names or hand-overs itself), and returns the
    /// session as that last read reports it.
    fn read(pages: &[Vec<Value>]) -> ProviderSession {
        let base = Url::parse("http://provider.example:9102/").unwrap();
        let ctx = PageContext {
            user_id: USER,
            default_channel: "WEB",
            base_url: &base,
        };
        let mut recall = Recall::default();
        let mut issues = Vec::new();
        for page in pages {
            map_history(page, ctx, &mut recall, &mut issues);
        }
        let newest = history().pop().into_iter().collect::<Vec<_>>();
        let changes = map_history(&newest, ctx, &mut recall, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        changes.last().unwrap().session.clone()
    }

    #[test]
    fn the_customer_and_assignment_come_from_the_right_items() {
        let session = read(&[history()]);
        let customer = session.customer.unwrap();
        assert_eq!(customer.name.as_deref(), Some("Michael Brown"));
        assert_eq!(
            customer.avatar_url.as_deref(),
            Some("http://provider.example:9102/image/user2.png")
        );
        assert_eq!(
            session.assigned_at.unwrap().timestamp_millis(),
            1_705_457_003_000,
            "the first TRANS2AGENT"
        );
        assert_eq!(session.agent.unwrap().name.as_deref(), Some("小李"));
        assert_eq!(
            session.closed_at.unwrap().timestamp_millis(),
            1_705_457_009_000,
            "the newest DISCONNECT"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any order, split and repetition of earlier reads leaves the
        /// same customer, assignment and agent.
        #[test]
        fn reads_in_any_order_report_the_same_facts(
            order in Just((0..9).collect::<Vec<usize>>()).prop_shuffle(),
            cuts in proptest::collection::vec(0usize..9, 0..4),
            repeat in 1usize..3,
        ) {
            let items = history();
            let shuffled: Vec<Value> = order.iter().map(|i| items[*i].clone()).collect();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut pages = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([shuffled.len()]) {
                if cut > start {
                    pages.push(shuffled[start..cut].to_vec());
                    start = cut;
                }
            }
            let pages: Vec<Vec<Value>> = std::iter::repeat_n(pages, repeat).flatten().collect();
            prop_assert_eq!(read(&pages), read(&[history()]));
        }
    }
}

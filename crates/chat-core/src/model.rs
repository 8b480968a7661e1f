//! Sessions, messages and the participants in them.
//!
//! Two families live here: the `Provider*` types an adapter produces from one
//! provider answer (keyed by the provider's own ids, every field the provider
//! may omit optional), and [`Session`] / [`Message`], the stored objects the
//! API serves (with gateway ids and derived fields).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message; drives `direction` and first-response accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The end customer (visitor, user); their messages are inbound.
    Customer,
    /// A human agent; only these count for `first_response_at`.
    Agent,
    /// An automated answerer.
    Bot,
    /// The provider platform itself (joins, queue notices, hand-overs).
    System,
}

impl Role {
    /// The direction a message by this role travels: customers speak inbound,
    /// everybody else speaks to the customer.
    pub fn direction(self) -> Direction {
        match self {
            Role::Customer => Direction::Inbound,
            _ => Direction::Outbound,
        }
    }

    /// The wire name, as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Agent => "agent",
            Role::Bot => "bot",
            Role::System => "system",
        }
    }
}

/// Whether a message came from the customer or went to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// To the customer (agent, bot or system).
    Outbound,
}

impl Direction {
    /// The wire name, as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// What a message carries; decides which of `text`, `media`, `card`, `event` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Plain text in `text`.
    Text,
    /// A picture in `media`.
    Image,
    /// A sound clip in `media`.
    Audio,
    /// A video in `media`.
    Video,
    /// Any other attachment in `media`.
    File,
    /// A rich card in `card` (ccmessaging WEBCARD, Kchat cards).
    Card,
    /// A location; `text` holds "lat/long/description" decoded.
    Location,
    /// A control event (`event` says which); no customer-visible content.
    Event,
}

impl MessageKind {
    /// The wire name, as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::Audio => "audio",
            MessageKind::Video => "video",
            MessageKind::File => "file",
            MessageKind::Card => "card",
            MessageKind::Location => "location",
            MessageKind::Event => "event",
        }
    }
}

/// Whether a session can still take messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Active: messages flow, it can be closed or transferred.
    Open,
    /// Ended: only a restart (or the provider) reopens it.
    Closed,
}

impl SessionStatus {
    /// The wire name, as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Open => "open",
            SessionStatus::Closed => "closed",
        }
    }
}

/// Who started a session, when the provider says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartedBy {
    /// The customer opened the conversation.
    Customer,
    /// An agent reached out (outreach).
    Agent,
    /// The platform (e.g. a bot flow or a rule).
    System,
}

impl StartedBy {
    /// The wire name, as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            StartedBy::Customer => "customer",
            StartedBy::Agent => "agent",
            StartedBy::System => "system",
        }
    }
}

/// A person or program taking part in a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The provider's id for them, when it gives one.
    pub external_id: Option<String>,
    /// Display name as the provider shows it.
    pub name: Option<String>,
    /// Avatar as the provider gives it (may be relative).
    pub avatar_url: Option<String>,
}

impl Participant {
    /// True when the provider told us nothing about this participant.
    pub fn is_empty(&self) -> bool {
        self.external_id.is_none() && self.name.is_none() && self.avatar_url.is_none()
    }
}

/// A message's author: a participant plus the role that decides direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// What kind of author this is.
    pub role: Role,
    /// The provider's id for the author.
    pub external_id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Avatar.
    pub avatar_url: Option<String>,
}

impl Sender {
    /// A sender known only by role (system notices, bare events).
    pub fn role_only(role: Role) -> Self {
        Sender {
            role,
            external_id: None,
            name: None,
            avatar_url: None,
        }
    }
}

/// An attachment, by URL where the provider gives one, else by provider file id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// Directly fetchable location, if the provider gives one.
    pub url: Option<String>,
    /// Provider-side handle (ccmessaging objectKey), for later download.
    pub file_id: Option<String>,
    /// MIME type when known or derivable from an extension.
    pub mime_type: Option<String>,
    /// Original file name.
    pub file_name: Option<String>,
    /// Size in bytes when the provider says.
    pub size_bytes: Option<i64>,
}

/// A rich card (title, description, picture, link).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// Heading shown on the card.
    pub title: Option<String>,
    /// Body text of the card.
    pub description: Option<String>,
    /// Provider file id of the card's picture.
    pub media_file_id: Option<String>,
    /// Where a click on the card goes.
    pub redirect_url: Option<String>,
}

/// A session as one provider answer describes it, keyed by the provider's id.
///
/// Every field the answer did not carry is `None` and leaves the stored value
/// alone, so partial views (a Spark operation, a ccmessaging message) merge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderSession {
    /// The provider's session id.
    pub external_id: String,
    /// New status, when this answer says (AddSession, DelSession, `status`).
    pub status: Option<SessionStatus>,
    /// Lower-case channel name (`web`, `wechat`…).
    pub channel: Option<String>,
    /// The customer.
    pub customer: Option<Participant>,
    /// The assigned agent.
    pub agent: Option<Participant>,
    /// Who opened it.
    pub started_by: Option<StartedBy>,
    /// Satisfaction rating as the provider words it.
    pub rating: Option<String>,
    /// When it began; the store keeps the earliest seen.
    pub created_at: Option<DateTime<Utc>>,
    /// When the current agent took it (starts first-response timing).
    pub assigned_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub closed_at: Option<DateTime<Utc>>,
    /// A short digest of the provider's summary (e.g. Kchat's message count,
    /// status and end time) so a poller fetches details only when it changed.
    pub fingerprint: Option<String>,
    /// The provider's original JSON for the session, unchanged.
    pub raw: Option<Value>,
}

/// A message as the provider delivered it, keyed by the provider's ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderMessage {
    /// The provider's message id (dedupe key with the account).
    pub external_id: String,
    /// The provider's id of the session it belongs to.
    pub session_external_id: String,
    /// Who wrote it.
    pub sender: Sender,
    /// What it carries.
    pub kind: MessageKind,
    /// Plain text (HTML already stripped).
    pub text: Option<String>,
    /// Attachment, for media kinds.
    pub media: Option<Media>,
    /// Card, for `card`.
    pub card: Option<Card>,
    /// Event name, for `event` (and events that carry text).
    pub event: Option<String>,
    /// When it was sent, in UTC.
    pub sent_at: DateTime<Utc>,
    /// When the provider received it, if it says.
    pub received_at: Option<DateTime<Utc>>,
    /// The provider's original JSON for the message, unchanged.
    pub raw: Value,
}

impl ProviderMessage {
    /// Inbound when the customer wrote it, else outbound.
    pub fn direction(&self) -> Direction {
        self.sender.role.direction()
    }
}

/// One step of a session's life in provider order: the session's new facts
/// and the messages that came with them. Applying changes in order rebuilds
/// the session (open, messages, close, reopen…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionChange {
    /// What this change says about the session.
    pub session: ProviderSession,
    /// Messages delivered with it, in provider order.
    pub messages: Vec<ProviderMessage>,
}

/// Delivery bookkeeping for messages sent through the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted by the gateway, not yet acknowledged by the provider.
    Pending,
    /// The provider accepted it.
    Sent,
    /// Retry budget spent or the provider refused it.
    Failed,
}

impl DeliveryStatus {
    /// The wire name, as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// Where a gateway-sent message is on its way to the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Current state.
    pub status: DeliveryStatus,
    /// Provider calls made so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A stored session, as the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Gateway id (opaque).
    pub id: String,
    /// Provider name (`spark`, `ccmessaging`, `kchat`).
    pub provider: String,
    /// Configured account name.
    pub account: String,
    /// The provider's session id.
    pub external_id: String,
    /// Open or closed.
    pub status: SessionStatus,
    /// Channel, lower case.
    pub channel: Option<String>,
    /// The customer (always present; fields may be null).
    pub customer: Participant,
    /// The assigned agent, if any.
    pub agent: Option<Participant>,
    /// Who opened it.
    pub started_by: Option<StartedBy>,
    /// Satisfaction rating.
    pub rating: Option<String>,
    /// Start time.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When the current agent took it.
    #[serde(with = "crate::time::rfc3339::option")]
    pub assigned_at: Option<DateTime<Utc>>,
    /// End time.
    #[serde(with = "crate::time::rfc3339::option")]
    pub closed_at: Option<DateTime<Utc>>,
    /// First agent message since the current assignment began.
    #[serde(with = "crate::time::rfc3339::option")]
    pub first_response_at: Option<DateTime<Utc>>,
    /// `sent_at` of the newest message.
    #[serde(with = "crate::time::rfc3339::option")]
    pub last_message_at: Option<DateTime<Utc>>,
    /// Last change to this row.
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Messages stored for it.
    pub message_count: i64,
    /// Provider's original JSON, for `?include=raw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

/// A stored message, as the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Gateway id (opaque).
    pub id: String,
    /// Gateway id of its session.
    pub session_id: String,
    /// Provider name.
    pub provider: String,
    /// Account name.
    pub account: String,
    /// The provider's message id; null while a gateway send is pending.
    pub external_id: Option<String>,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Author.
    pub sender: Sender,
    /// Content kind.
    pub kind: MessageKind,
    /// Plain text.
    pub text: Option<String>,
    /// Attachment.
    pub media: Option<Media>,
    /// Card.
    pub card: Option<Card>,
    /// Event name.
    pub event: Option<String>,
    /// Send time.
    #[serde(with = "crate::time::rfc3339")]
    pub sent_at: DateTime<Utc>,
    /// Provider receive time.
    #[serde(with = "crate::time::rfc3339::option")]
    pub received_at: Option<DateTime<Utc>>,
    /// Set only for messages sent through the gateway.
    pub delivery: Option<Delivery>,
    /// Provider's original JSON, for `?include=raw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

//! Messages, and the bodies that send them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{wire_enum, Provider};

wire_enum! {
    /// To or from the customer.
    pub enum Direction {
        /// From the customer.
        Inbound = "inbound",
        /// To the customer (agent, bot, system).
        Outbound = "outbound",
    }
}

wire_enum! {
    /// Who wrote a message.
    pub enum Role {
        /// The customer.
        Customer = "customer",
        /// A human agent.
        Agent = "agent",
        /// An automated answer.
        Bot = "bot",
        /// The provider's system.
        System = "system",
    }
}

wire_enum! {
    /// What a message holds.
    pub enum MessageKind {
        /// Plain text in `text`.
        Text = "text",
        /// An image in `media`.
        Image = "image",
        /// A voice clip in `media`.
        Audio = "audio",
        /// A video in `media`.
        Video = "video",
        /// Any other file in `media`.
        File = "file",
        /// A rich card in `card`.
        Card = "card",
        /// A shared location.
        Location = "location",
        /// A conversation event in `event` (connect, transfer, …).
        Event = "event",
    }
}

wire_enum! {
    /// Where a message sent through the gateway stands.
    pub enum DeliveryStatus {
        /// Stored; the provider has not accepted it yet.
        Pending = "pending",
        /// The provider accepted it.
        Sent = "sent",
        /// The retry budget ran out.
        Failed = "failed",
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// Customer, agent, bot or system.
    pub role: Role,
    /// The provider's id of the writer, when known.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Display name, when known.
    #[serde(default)]
    pub name: Option<String>,
    /// Absolute avatar URL, when known.
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// Absolute `http(s)` URL, when the provider gives one.
    #[serde(default)]
    pub url: Option<String>,
    /// The provider's file id, when it has one instead of a URL.
    #[serde(default)]
    pub file_id: Option<String>,
    /// MIME type, when known.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// File name, when known.
    #[serde(default)]
    pub file_name: Option<String>,
    /// Size, when known.
    #[serde(default)]
    pub size_bytes: Option<u64>,
}

/// A rich card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// Heading.
    #[serde(default)]
    pub title: Option<String>,
    /// Body text.
    #[serde(default)]
    pub description: Option<String>,
    /// The provider's id of the card's picture.
    #[serde(default)]
    pub media_file_id: Option<String>,
    /// Where a tap leads.
    #[serde(default)]
    pub redirect_url: Option<String>,
}

/// The delivery state of a message sent through the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Pending, sent or failed.
    pub status: DeliveryStatus,
    /// Provider calls made so far.
    pub attempts: u32,
    /// Why the last call failed, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// One message of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The gateway's opaque id.
    pub id: String,
    /// The session it belongs to.
    pub session_id: String,
    /// The provider of its account.
    pub provider: Provider,
    /// The configured account name.
    pub account: String,
    /// The provider's own id (null until a send is accepted).
    #[serde(default)]
    pub external_id: Option<String>,
    /// Inbound (from the customer) or outbound.
    pub direction: Direction,
    /// Who wrote it.
    pub sender: Sender,
    /// What it holds.
    pub kind: MessageKind,
    /// Plain text (provider HTML is stripped; `raw` keeps it).
    #[serde(default)]
    pub text: Option<String>,
    /// The attached file, for media kinds.
    #[serde(default)]
    pub media: Option<Media>,
    /// The card, for `card`.
    #[serde(default)]
    pub card: Option<Card>,
    /// The conversation event, for `event` (`connect`, `transfer_to_agent`, …).
    #[serde(default)]
    pub event: Option<String>,
    /// When the writer sent it.
    pub sent_at: DateTime<Utc>,
    /// When the provider reports it was received, if it does.
    #[serde(default)]
    pub received_at: Option<DateTime<Utc>>,
    /// Set only on messages sent through the gateway.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// The provider's original JSON, with `include=raw` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

/// A file to send, by URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MediaRef {
    /// Where the provider fetches the file.
    pub url: String,
    /// MIME type, when the caller knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// File name shown to the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// Body of `POST /v1/sessions/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    /// `text`, or a media kind with `media`.
    pub kind: MessageKind,
    /// The text, for `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The file, for media kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaRef>,
}

impl NewMessage {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        NewMessage {
            kind: MessageKind::Text,
            text: Some(text.into()),
            media: None,
        }
    }

    /// An image by URL.
    pub fn image(url: impl Into<String>) -> Self {
        NewMessage {
            kind: MessageKind::Image,
            text: None,
            media: Some(MediaRef {
                url: url.into(),
                ..MediaRef::default()
            }),
        }
    }
}

/// Body of `POST /v1/messages`: start a session with a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outreach {
    /// The account that reaches out.
    pub account: String,
    /// The provider's id of the customer.
    pub customer_id: String,
    /// The first message.
    #[serde(flatten)]
    pub message: NewMessage,
    /// Must be true: starting a conversation is a deliberate act (else 409
    /// `confirmation_required`).
    pub confirm_new_session: bool,
}

//! Webhook endpoints and their delivery attempts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::wire_enum;

wire_enum! {
    /// Why an endpoint no longer receives deliveries.
    pub enum DisabledReason {
        /// It answered 410 Gone.
        Gone = "gone",
        /// Paused with `enabled: false`.
        Manual = "manual",
    }
}

wire_enum! {
    /// The outcome of one delivery attempt.
    pub enum DeliveryAttemptStatus {
        /// Queued for now (a manual retry).
        Pending = "pending",
        /// The endpoint answered 2xx.
        Succeeded = "succeeded",
        /// Non-2xx, timeout or connection failure.
        Failed = "failed",
    }
}

fn yes() -> bool {
    true
}

/// A registered webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// The gateway's id.
    pub id: String,
    /// Where events are posted.
    pub url: String,
    /// Event types it receives (`*` for all).
    pub events: Vec<String>,
    /// Accounts whose events it receives (`*` for all).
    pub accounts: Vec<String>,
    /// Whether deliveries go out.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Why it is disabled, if it is.
    #[serde(default)]
    pub disabled_reason: Option<DisabledReason>,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A webhook as created or rotated: the only answers that show the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` + base64 of the signing key; pass it to [`crate::verify_webhook`].
    pub secret: String,
}

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewWebhook {
    /// Where to post events.
    pub url: String,
    /// Event types to receive (`["*"]` for all).
    pub events: Vec<String>,
    /// Accounts to receive events of (`["*"]` for all).
    pub accounts: Vec<String>,
}

/// Body of `PATCH /v1/webhooks/{id}`: only the fields given change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WebhookPatch {
    /// New target URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// New event types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// New accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<String>>,
    /// `false` pauses; `true` resumes from the first event not yet delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// One delivery attempt of an event to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// The attempt's id (for a manual retry).
    pub id: String,
    /// The event delivered.
    pub event_seq: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Outcome.
    pub status: DeliveryAttemptStatus,
    /// The endpoint's HTTP status, when it answered.
    #[serde(default)]
    pub response_status: Option<u16>,
    /// What went wrong, when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The retry this failure scheduled.
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Answer of `POST /v1/webhooks/{id}/recover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovered {
    /// Events queued for delivery again.
    pub queued: u64,
}

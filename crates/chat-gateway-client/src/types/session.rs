//! Sessions (conversations) and the actions on them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{wire_enum, Participant, Provider};

wire_enum! {
    /// Whether a session still takes messages.
    pub enum SessionStatus {
        /// The conversation goes on.
        Open = "open",
        /// Ended by the agent, the customer or the provider.
        Closed = "closed",
    }
}

wire_enum! {
    /// Who opened a session.
    pub enum StartedBy {
        /// The customer wrote first.
        Customer = "customer",
        /// An agent started it (outreach).
        Agent = "agent",
        /// The provider's system did.
        System = "system",
    }
}

/// A conversation between a customer and the service, as the gateway keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The gateway's opaque id.
    pub id: String,
    /// The provider of its account.
    pub provider: Provider,
    /// The configured account name.
    pub account: String,
    /// The provider's own id of the session.
    pub external_id: String,
    /// Open or closed.
    pub status: SessionStatus,
    /// The provider's channel (`web`, `wechat`, …), when known.
    #[serde(default)]
    pub channel: Option<String>,
    /// The customer.
    pub customer: Participant,
    /// The assigned agent, if any.
    #[serde(default)]
    pub agent: Option<Participant>,
    /// Who opened it, when known.
    #[serde(default)]
    pub started_by: Option<StartedBy>,
    /// The customer's rating, as the provider writes it.
    #[serde(default)]
    pub rating: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When the current agent got it.
    #[serde(default)]
    pub assigned_at: Option<DateTime<Utc>>,
    /// When it was closed.
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    /// The current agent's first answer (API.md "Session").
    #[serde(default)]
    pub first_response_at: Option<DateTime<Utc>>,
    /// The newest message's `sent_at`.
    #[serde(default)]
    pub last_message_at: Option<DateTime<Utc>>,
    /// Last change of any field.
    pub updated_at: DateTime<Utc>,
    /// Messages stored for it.
    pub message_count: u64,
    /// The provider's original JSON, with `include=raw` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

/// Body of `POST /v1/sessions/{id}/transfer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The agent who takes the session over.
    pub agent_id: String,
    /// Whether the provider tells the customer.
    #[serde(default)]
    pub notify_customer: bool,
}

//! The store's write half for API actions: sends and their outbox,
//! session actions, and `Idempotency-Key` answers.
//!
//! Kept as its own trait (a supertrait of [`super::Store`]) so the read and
//! sync side of the store and this side can change independently. Every
//! method is one transaction; every visible change writes its event last,
//! through the same [`super::ingest::insert_events`] as synced data.

use async_trait::async_trait;
use chat_core::{Message, MessageKind, SendReceipt, Session};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::StoreResult;

/// What the dispatcher does with an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// Deliver into an existing session.
    Send,
    /// Ask the provider to start a session with the customer (the message
    /// sits in a provisional session until the provider names it).
    Outreach,
}

impl OutboxKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Send => "send",
            OutboxKind::Outreach => "outreach",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<OutboxKind> {
        match s {
            "send" => Some(OutboxKind::Send),
            "outreach" => Some(OutboxKind::Outreach),
            _ => None,
        }
    }
}

/// What the provider is asked to deliver, stored as JSON in the outbox row
/// so a restarted gateway can send it without the API request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxPayload {
    /// The customer's provider id.
    pub customer_id: String,
    /// Text or image.
    pub kind: MessageKind,
    /// The text, for `text`.
    pub text: Option<String>,
    /// The media URL, for `image`.
    pub media_url: Option<String>,
    /// When the gateway accepted the send.
    #[serde(with = "chat_core::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The answer to store for an `Idempotency-Key` in the same transaction as
/// the work it answers for, so a repeat can never find the work done and the
/// answer missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyAnswer {
    /// API key name (or the fixed name used without keys).
    pub scope: String,
    /// The caller's `Idempotency-Key`.
    pub key: String,
    /// HTTP status of the answer.
    pub status: u16,
    /// Body of the answer, as sent.
    pub body: String,
}

/// A send accepted by the API, stored in one transaction with its outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSend {
    /// The message as the API answers it (gateway id, `delivery.status =
    /// pending`, no `external_id`).
    pub message: Message,
    /// Send into a session or start one.
    pub kind: OutboxKind,
    /// What the dispatcher will hand the provider.
    pub payload: OutboxPayload,
    /// Outreach only: the provisional session the message goes into.
    pub new_session: Option<Session>,
    /// The `Idempotency-Key` answer, if the caller sent a key.
    pub idempotency: Option<IdempotencyAnswer>,
}

/// What storing a send did.
#[derive(Debug, Clone, PartialEq)]
pub enum EnqueueOutcome {
    /// Stored; the message as committed.
    Stored(Box<Message>),
    /// The session no longer exists.
    SessionNotFound,
    /// The session was closed between validation and commit.
    SessionClosed,
}

/// One claimed outbox row with what the dispatcher needs to deliver it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxTask {
    /// Outbox row key.
    pub pk: i64,
    /// The message being delivered.
    pub message_id: String,
    /// Its account.
    pub account: String,
    /// Send or outreach.
    pub kind: OutboxKind,
    /// What to deliver.
    pub payload: OutboxPayload,
    /// Provider calls made so far.
    pub attempts: i64,
    /// The message's session (gateway id).
    pub session_id: String,
    /// The session's provider id; a provisional outreach session's starts
    /// with [`PROVISIONAL_SESSION_PREFIX`].
    pub session_external_id: String,
    /// Set when the provider's echo was already matched to this message: it
    /// was delivered, and must not be sent again.
    pub message_external_id: Option<String>,
}

/// Prefix of a provisional outreach session's `external_id` until the
/// provider names the session (`pending:<message id>`).
pub const PROVISIONAL_SESSION_PREFIX: &str = "pending:";

impl OutboxTask {
    /// Whether the session is still waiting for the provider's id.
    pub fn session_is_provisional(&self) -> bool {
        self.session_external_id
            .starts_with(PROVISIONAL_SESSION_PREFIX)
    }
}

/// How one delivery attempt ended, as the dispatcher decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The provider accepted it.
    Accepted(SendReceipt),
    /// Its echo was already matched: delivered before, nothing was sent now.
    AlreadyDelivered,
    /// A retryable failure inside the budget: try again at `next_attempt_at`.
    Retry {
        /// Why the attempt failed.
        error: String,
        /// When to try again.
        next_attempt_at: DateTime<Utc>,
    },
    /// Refused, or the budget is spent: give up.
    Failed {
        /// Why.
        error: String,
        /// Whether a provider call was made (counts as an attempt).
        called: bool,
    },
}

/// A session action the provider has already carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionAction {
    /// The agent ended it.
    Close,
    /// The agent reopened it.
    Restart,
    /// Handed to another agent at the hand-over time.
    Transfer {
        /// The new agent's provider id.
        agent_id: String,
    },
}

/// Where an `Idempotency-Key` stands when a request arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First use (or a stale or expired one taken over): do the work.
    Started,
    /// Done before: answer this again.
    Replay {
        /// HTTP status.
        status: u16,
        /// Body.
        body: String,
    },
    /// Another request with this key and body is still working.
    InProgress,
    /// Used before with a different request.
    Mismatch,
}

/// The write half of the store for API actions (see the module docs).
#[async_trait]
pub trait ActionStore: Send + Sync {
    /// Stores a send: the message, its outbox row, the session's counters,
    /// `message.created` (and `session.opened` for outreach) and the
    /// idempotent answer, in one transaction.
    async fn enqueue_send(&self, send: &NewSend) -> StoreResult<EnqueueOutcome>;

    /// Claims the oldest due outbox row whose session has no older row
    /// waiting (so a session's sends go out in order), leasing it until
    /// `now + lease` so a crashed claimer's row is retried later. On
    /// PostgreSQL replicas skip each other's claims (`SKIP LOCKED`).
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Option<OutboxTask>>;

    /// The earliest time an unclaimed outbox row becomes due, if any.
    async fn outbox_next_due(&self) -> StoreResult<Option<DateTime<Utc>>>;

    /// Sends waiting in the outbox (for the `outbox_pending` gauge).
    async fn outbox_depth(&self) -> StoreResult<i64>;

    /// Records how a delivery attempt ended, with `message.updated` (and the
    /// outreach session's change), in one transaction. Returns the message
    /// as committed, or `None` when the row was already finished elsewhere.
    async fn finish_delivery(
        &self,
        task: &OutboxTask,
        result: &DeliveryResult,
    ) -> StoreResult<Option<Message>>;

    /// Applies an action the provider carried out to the stored session with
    /// its event, plus an optional message to the customer (transfer
    /// notice); an action already reflected (the provider's feed came first)
    /// changes nothing and emits nothing.
    async fn apply_session_action(
        &self,
        session_id: &str,
        action: &SessionAction,
        notify: Option<&NewSend>,
    ) -> StoreResult<Session>;

    /// Reserves `key` for a request hashing to `hash`, or reports its state.
    /// A reservation older than `stale_before` without an answer (its request
    /// died) and any key older than `expired_before` are taken over.
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        hash: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> StoreResult<IdempotencyBegin>;

    /// Stores the answer of a reserved key.
    async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> StoreResult<()>;

    /// Drops an unanswered reservation (the request failed before doing
    /// anything worth replaying), so a repeat does the work.
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()>;

    /// Deletes keys created before `older_than`; returns how many.
    async fn prune_idempotency_keys(&self, older_than: DateTime<Utc>) -> StoreResult<u64>;
}

#[async_trait]
impl ActionStore for super::SqlStore {
    async fn enqueue_send(&self, send: &NewSend) -> StoreResult<EnqueueOutcome> {
        super::sends::enqueue(self, send).await
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Option<OutboxTask>> {
        super::outbox::claim(self, now, lease).await
    }

    async fn outbox_next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        super::outbox::next_due(self).await
    }

    async fn outbox_depth(&self) -> StoreResult<i64> {
        use sqlx::Row;
        Ok(sqlx::query("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    async fn finish_delivery(
        &self,
        task: &OutboxTask,
        result: &DeliveryResult,
    ) -> StoreResult<Option<Message>> {
        super::outbox::finish(self, task, result).await
    }

    async fn apply_session_action(
        &self,
        session_id: &str,
        action: &SessionAction,
        notify: Option<&NewSend>,
    ) -> StoreResult<Session> {
        super::session_actions::apply(self, session_id, action, notify).await
    }

    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        hash: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> StoreResult<IdempotencyBegin> {
        super::idempotency::begin(self, scope, key, hash, now, stale_before, expired_before).await
    }

    async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> StoreResult<()> {
        super::idempotency::finish(self, scope, key, status, body).await
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()> {
        super::idempotency::abandon(self, scope, key).await
    }

    async fn prune_idempotency_keys(&self, older_than: DateTime<Utc>) -> StoreResult<u64> {
        super::idempotency::prune(self, older_than).await
    }
}

//! A typed async client of the chat-gateway REST API (API.md), for backend
//! services.
//!
//! It speaks HTTP only and owns its wire types, written from the API
//! contract rather than shared with the gateway, so the two are checked
//! against each other instead of changing together.
//!
//! - Lists are [`Stream`](futures_util::Stream)s that follow `next_cursor`
//!   page by page ([`Client::sessions`], [`Client::messages`], …); the
//!   `*_page` methods give one page.
//! - Sends carry an `Idempotency-Key` (a fresh UUID v7 unless the caller
//!   gives one) and are retried with the same key on connection errors,
//!   timeouts, 429, 503 and 504, so nothing is sent twice ([`RetryPolicy`]).
//! - [`Client::events`] long-polls the event feed forever, reconnecting with
//!   backoff when the gateway restarts and resuming from the last `seq` it
//!   yielded; [`Client::events_sse`] reads the same feed as Server-Sent Events.
//! - Errors carry the API's `error.code` as an [`ErrorCode`], the status,
//!   message, request id and `Retry-After` ([`ApiError`]).
//! - [`verify_webhook`] checks a delivery's Standard Webhooks signature.
//!
//! ```no_run
//! use chat_gateway_client::{Client, EventsQuery, NewMessage, SessionFilter, SessionStatus};
//! use futures_util::StreamExt;
//!
//! # async fn run() -> Result<(), chat_gateway_client::Error> {
//! let gw = Client::new("http://127.0.0.1:8080", "cgw_live_key")?;
//!
//! // Every open session, however many pages.
//! let filter = SessionFilter { status: Some(SessionStatus::Open), ..Default::default() };
//! let mut sessions = gw.sessions(&filter);
//! while let Some(session) = sessions.next().await {
//!     let session = session?;
//!     // Retried safely: the generated Idempotency-Key travels with each try.
//!     let sent = gw.send_message(&session.id, &NewMessage::text("您好")).await?;
//!     println!("{} queued as {}", session.id, sent.id);
//! }
//!
//! // React to changes, surviving gateway restarts.
//! let mut events = gw.events(EventsQuery::default());
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("{} {}", event.seq, event.event_type);
//! }
//! # Ok(()) }
//! ```

mod client;
mod endpoints;
mod error;
mod events;
mod paginate;
mod query;
mod retry;
pub mod types;
mod webhook;

pub use client::{Client, ClientBuilder, Page};
pub use endpoints::{new_idempotency_key, MediaFile};
pub use error::{ApiError, Error, ErrorCode, Result};
pub use events::EventPage;
pub use query::{
    CustomerFilter, EventsQuery, GroupBy, Interval, MessageFilter, Order, SessionFilter, StatsQuery,
};
pub use retry::RetryPolicy;
pub use types::*;
pub use webhook::{verify_webhook, verify_webhook_at, WebhookError, TIMESTAMP_TOLERANCE_SECS};

//! Persistence: one [`Store`] trait, one SQL implementation with a SQLite and
//! a PostgreSQL dialect, chosen once from the database URL.
//!
//! Both backends run the same queries (placeholders `$1…` work on both);
//! what differs — connection set-up, migrations, how event `seq` is kept in
//! commit order, how other replicas are woken — lives in [`sqlite`] and
//! [`postgres`]. The shared store test suite runs every test on both.

mod account_lock;
mod actions;
pub mod customers;
mod echo;
mod idempotency;
mod ingest;
mod outbox;
pub mod postgres;
mod rows;
mod sends;
mod session_actions;
mod sql;
pub mod sqlite;
pub mod stats;
mod types;
pub mod webhooks;

use async_trait::async_trait;
use chat_core::{Event, Message, Session, SessionChange};

pub use actions::*;
pub use customers::CustomerStore;
pub use sql::{redact_url as sql_redact, SqlStore};
pub use stats::StatsStore;
pub use types::*;
pub use webhooks::WebhookStore;

/// How long a request waits for a database connection (including opening
/// one) before it fails with [`StoreError::Database`] (API: 503): short, so
/// with the database unreachable `/readyz` and every DB-backed request
/// answer within 2 s instead of hanging, and a probe with a short timeout
/// sees a 503 rather than a hang. Connections are opened on demand, so
/// requests succeed again as soon as the database answers.
pub(crate) const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// A storage failure, sorted by what the API answers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row (API: 404).
    #[error("not found")]
    NotFound,
    /// A cursor or filter the store cannot use (API: 400).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// An event cursor older than the retention window (API: 410).
    #[error("event cursor is older than the retention window")]
    CursorExpired,
    /// The database did not answer or failed (API: 503).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The account's sync lease moved to another replica.
    #[error("sync lease lost")]
    LeaseLost,
    /// A stored value could not be read back (a bug or a hand-edited row).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the gateway keeps, behind one interface so the API, the sync
/// workers and the tests never care which database is underneath.
#[async_trait]
pub trait Store:
    ActionStore + WebhookStore + CustomerStore + StatsStore + Send + Sync + std::fmt::Debug
{
    /// Which backend this is (`sqlite` or `postgres`), for logs and `/readyz`.
    fn backend(&self) -> Backend;

    /// Cheap round trip: is the database answering?
    async fn ping(&self) -> StoreResult<()>;

    /// Applies provider changes for one account in one transaction: upserts
    /// sessions and messages, writes exactly one event per real change, and
    /// stores `checkpoint` (the sync cursor covering these rows) with them.
    async fn ingest(
        &self,
        account: &AccountRef,
        changes: &[SessionChange],
        checkpoint: Option<&str>,
    ) -> StoreResult<IngestSummary> {
        self.ingest_as(account, changes, checkpoint, None).await
    }

    /// [`Store::ingest`] by the holder of the account's sync lease: the
    /// checkpoint is written only while `lease_owner` still holds the lease,
    /// else nothing is committed and [`StoreError::LeaseLost`] is returned,
    /// so a replica that lost its lease can never move the cursor back.
    async fn ingest_as(
        &self,
        account: &AccountRef,
        changes: &[SessionChange],
        checkpoint: Option<&str>,
        lease_owner: Option<&str>,
    ) -> StoreResult<IngestSummary>;

    /// Takes or renews the account's sync lease for `ttl`; true when
    /// `owner` holds it afterwards.
    async fn acquire_lease(
        &self,
        account: &AccountRef,
        owner: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<bool>;

    /// Gives the lease up (clean shutdown), so another replica takes over at once.
    async fn release_lease(&self, account: &str, owner: &str) -> StoreResult<()>;

    /// Stored fingerprint and status of the given sessions, for pollers that
    /// fetch details only when a summary changed.
    async fn session_digests(
        &self,
        account: &str,
        external_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, (Option<String>, chat_core::SessionStatus)>>;

    /// Provider ids of the account's open sessions (pollers re-read them
    /// however old they are).
    async fn open_session_ids(&self, account: &str) -> StoreResult<Vec<String>>;

    /// `sent_at` of the newest stored message of a customer in an account.
    async fn newest_message_at(
        &self,
        account: &str,
        customer_id: &str,
    ) -> StoreResult<Option<chrono::DateTime<chrono::Utc>>>;

    /// Adds customers (from a backfill) to the account's synced set.
    async fn add_customers(&self, account: &AccountRef, customers: &[String]) -> StoreResult<()>;

    /// Records backfill progress (kept apart from the worker's own status).
    async fn put_backfill(&self, account: &str, backfill: Option<&Backfill>) -> StoreResult<()>;

    /// One session by gateway id.
    async fn get_session(&self, id: &str, scope: &AccountScope) -> StoreResult<Session>;

    /// A session by its provider id within an account.
    async fn find_session(&self, account: &str, external_id: &str) -> StoreResult<Option<Session>>;

    /// A keyset page of sessions.
    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Session>>;

    /// One message by gateway id.
    async fn get_message(&self, id: &str, scope: &AccountScope) -> StoreResult<Message>;

    /// A keyset page of messages.
    async fn list_messages(
        &self,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Message>>;

    /// Events with `seq > after`, oldest first, at most `limit`.
    async fn read_events(&self, query: &EventQuery) -> StoreResult<Vec<Event>>;

    /// The newest committed `seq` (0 when there is none).
    async fn latest_seq(&self) -> StoreResult<i64>;

    /// The highest `seq` removed by retention (0 when none): cursors below it
    /// can no longer be served.
    async fn pruned_through(&self) -> StoreResult<i64>;

    /// Deletes events older than `older_than_micros`; returns how many.
    async fn prune_events(&self, older_than_micros: i64) -> StoreResult<u64>;

    /// An account's sync bookkeeping, created idle on first use.
    async fn sync_state(&self, account: &AccountRef) -> StoreResult<SyncState>;

    /// Overwrites the observable parts of an account's sync state.
    async fn put_sync_status(&self, account: &str, status: &SyncStatus) -> StoreResult<()>;

    /// Subscribes to "new events committed" wake-ups (this process, and on
    /// PostgreSQL every replica).
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
}

//! Storing a send: message, outbox row, counters and events in one
//! transaction (invariant 4), plus the row helpers the outbox and the
//! session actions share.

use chat_core::{EventType, Message, SessionStatus};
use chrono::{DateTime, Utc};
use sqlx::{Any, Row, Transaction};

use super::account_lock;
use super::actions::{EnqueueOutcome, IdempotencyAnswer, NewSend};
use super::ingest::{
    count_message, insert_events, insert_session, to_json, write_session, PendingEvent,
};
use super::rows::{search_text, session_from_row, to_micros, SessionRow, SESSION_COLUMNS};
use super::sql::SqlStore;
use super::{AccountRef, Backend, StoreResult};

/// ` FOR UPDATE` on PostgreSQL (row locks against concurrent writers);
/// nothing on SQLite, where the store's writer lock already serialises.
pub(super) fn for_update(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

/// A session row by gateway id, locked for this transaction.
pub(super) async fn load_session_by_id(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    id: &str,
) -> StoreResult<Option<SessionRow>> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1{}",
        for_update(backend)
    );
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await?;
    row.map(|r| session_from_row(&r, false)).transpose()
}

/// Inserts a message made by the gateway (no provider id yet, delivery
/// bookkeeping set); returns its pk.
pub(super) async fn insert_gateway_message(
    tx: &mut Transaction<'_, Any>,
    m: &Message,
    customer_external_id: Option<&str>,
) -> StoreResult<i64> {
    let media = m.media.as_ref().map(to_json).transpose()?;
    let delivery = m.delivery.as_ref();
    let pk: i64 = sqlx::query(
        "INSERT INTO messages (id, session_id, account, provider, external_id, \
         customer_external_id, direction, sender_role, sender_external_id, sender_name, \
         sender_avatar_url, kind, text, search_text, media, card, event, sent_at, received_at, \
         delivery_status, delivery_attempts, delivery_last_error, raw) VALUES ($1, $2, $3, $4, \
         NULL, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL, $15, NULL, $16, $17, \
         $18, NULL) RETURNING pk",
    )
    .bind(&m.id)
    .bind(&m.session_id)
    .bind(&m.account)
    .bind(&m.provider)
    .bind(customer_external_id)
    .bind(m.direction.as_str())
    .bind(m.sender.role.as_str())
    .bind(m.sender.external_id.as_deref())
    .bind(m.sender.name.as_deref())
    .bind(m.sender.avatar_url.as_deref())
    .bind(m.kind.as_str())
    .bind(m.text.as_deref())
    .bind(search_text(m.text.as_deref()))
    .bind(media)
    .bind(to_micros(m.sent_at))
    .bind(delivery.map(|d| d.status.as_str()))
    .bind(delivery.map(|d| d.attempts))
    .bind(delivery.and_then(|d| d.last_error.as_deref()))
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    Ok(pk)
}

/// Queues a stored message for the dispatcher, due at once.
pub(super) async fn insert_outbox(
    tx: &mut Transaction<'_, Any>,
    send: &NewSend,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let payload = to_json(&send.payload)?;
    sqlx::query(
        "INSERT INTO outbox (message_id, account, kind, payload, attempts, next_attempt_at, \
         locked_until, created_at, session_id) VALUES ($1, $2, $3, $4, 0, $5, NULL, $5, $6)",
    )
    .bind(&send.message.id)
    .bind(&send.message.account)
    .bind(send.kind.as_str())
    .bind(payload)
    .bind(to_micros(now))
    .bind(&send.message.session_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores the answer of an `Idempotency-Key` inside the caller's transaction.
pub(super) async fn write_idempotency_answer(
    tx: &mut Transaction<'_, Any>,
    a: &IdempotencyAnswer,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $1, response = $2 WHERE api_key_name = $3 AND key = $4",
    )
    .bind(i64::from(a.status))
    .bind(&a.body)
    .bind(&a.scope)
    .bind(&a.key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts a send into `row`'s session inside a transaction: message, outbox
/// row, counters (as ingest counts them); returns its `message.created`.
pub(super) async fn add_send(
    tx: &mut Transaction<'_, Any>,
    row: &mut SessionRow,
    send: &NewSend,
    now: DateTime<Utc>,
) -> StoreResult<PendingEvent> {
    let m = &send.message;
    insert_gateway_message(tx, m, row.session.customer.external_id.as_deref()).await?;
    insert_outbox(tx, send, now).await?;
    count_message(row, m.sender.role, m.kind, m.sent_at, now);
    PendingEvent::message_created(m)
}

/// [`super::ActionStore::enqueue_send`].
pub(super) async fn enqueue(store: &SqlStore, send: &NewSend) -> StoreResult<EnqueueOutcome> {
    let _guard = store.write_guard().await;
    let mut tx = store.pool.begin().await?;
    let now = Utc::now();
    let m = &send.message;
    account_lock::lock(&mut tx, store.backend, &m.account).await?;
    let mut events = Vec::new();
    let mut row = match &send.new_session {
        Some(session) => {
            let mut row = SessionRow {
                pk: 0,
                session: session.clone(),
                assignment_started_at: Some(session.created_at),
                fingerprint: None,
                raw_text: None,
            };
            row.pk = insert_session(&mut tx, &row).await?;
            events.push(PendingEvent::session(
                EventType::SessionOpened,
                &row.session,
            )?);
            row
        }
        None => match load_session_by_id(&mut tx, store.backend, &m.session_id).await? {
            Some(row) if row.session.status == SessionStatus::Closed => {
                return Ok(EnqueueOutcome::SessionClosed)
            }
            Some(row) => row,
            None => return Ok(EnqueueOutcome::SessionNotFound),
        },
    };
    events.push(add_send(&mut tx, &mut row, send, now).await?);
    write_session(&mut tx, &row).await?;
    if let Some(answer) = &send.idempotency {
        write_idempotency_answer(&mut tx, answer).await?;
    }
    let account = AccountRef {
        name: m.account.clone(),
        provider: m.provider.clone(),
    };
    let last = insert_events(&mut tx, store.backend, &account, now, &events).await?;
    tx.commit().await?;
    if let Some(seq) = last {
        store.announce(seq);
    }
    Ok(EnqueueOutcome::Stored(Box::new(m.clone())))
}

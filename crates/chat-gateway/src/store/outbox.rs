//! The outbox: claiming due sends and recording how their delivery ended.
//!
//! A claim leases a row (`locked_until`) in its own short transaction, so a
//! claimer that dies mid-send leaves a row that becomes due again when the
//! lease ends. The provider call happens outside any transaction; its result
//! is recorded in one transaction that also deletes the outbox row, so a
//! message the provider acknowledged is never sent again.

use std::time::Duration;

use chat_core::{EventType, Message, SendReceipt};
use chrono::{DateTime, Utc};
use sqlx::{Any, Row, Transaction};

use super::account_lock;
use super::actions::{DeliveryResult, OutboxKind, OutboxPayload, OutboxTask};
use super::ingest::{count_message, insert_events, write_session, PendingEvent};
use super::rows::{
    from_micros, message_from_row, session_from_row, to_micros, MESSAGE_COLUMNS, SESSION_COLUMNS,
};
use super::sends::{for_update, load_session_by_id};
use super::sql::SqlStore;
use super::{AccountRef, Backend, StoreError, StoreResult};

/// Tries the finishing transaction again this many times when a concurrent
/// writer (the live feed storing the echo) made it fail on the unique
/// `(account, external_id)`; the next try sees that row and adapts.
const FINISH_TRIES: usize = 3;

/// [`super::ActionStore::claim_outbox`].
pub(super) async fn claim(
    store: &SqlStore,
    now: DateTime<Utc>,
    lease: Duration,
) -> StoreResult<Option<OutboxTask>> {
    let _guard = store.write_guard().await;
    let mut tx = store.pool.begin().await?;
    let lock = match store.backend {
        Backend::Postgres => " FOR UPDATE OF o SKIP LOCKED",
        Backend::Sqlite => "",
    };
    // Head of line per session: a row is claimable only when no older row of
    // the same session waits, so a session's messages arrive in order.
    let sql = format!(
        "SELECT o.pk FROM outbox o \
         WHERE o.next_attempt_at <= $1 AND (o.locked_until IS NULL OR o.locked_until <= $1) \
         AND NOT EXISTS (SELECT 1 FROM outbox o2 WHERE o2.session_id = o.session_id AND o2.pk < o.pk) \
         ORDER BY o.next_attempt_at, o.pk LIMIT 1{lock}"
    );
    let now_us = to_micros(now);
    let Some(row) = sqlx::query(&sql)
        .bind(now_us)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let pk: i64 = row.try_get(0)?;
    let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    // A claim of a message the provider has not acknowledged leads to a
    // provider call: it is counted now, before the call, so a call whose
    // answer dies with this process still counts in `delivery.attempts`.
    sqlx::query(
        "UPDATE outbox SET locked_until = $1, calls = calls + CASE WHEN EXISTS \
         (SELECT 1 FROM messages m WHERE m.id = outbox.message_id AND m.external_id IS NULL) \
         THEN 1 ELSE 0 END WHERE pk = $2",
    )
    .bind(to_micros(until))
    .bind(pk)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(
        "SELECT o.pk, o.message_id, o.account, o.kind, o.payload, o.attempts, m.session_id, \
         m.external_id, s.external_id AS session_external_id FROM outbox o \
         JOIN messages m ON m.id = o.message_id LEFT JOIN sessions s ON s.id = m.session_id \
         WHERE o.pk = $1",
    )
    .bind(pk)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let kind: String = row.try_get("kind")?;
    let payload: String = row.try_get("payload")?;
    Ok(Some(OutboxTask {
        pk,
        message_id: row.try_get("message_id")?,
        account: row.try_get("account")?,
        kind: OutboxKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("outbox kind {kind:?}")))?,
        payload: serde_json::from_str::<OutboxPayload>(&payload)
            .map_err(|e| StoreError::Corrupt(format!("outbox payload: {e}")))?,
        attempts: row.try_get("attempts")?,
        session_id: row.try_get("session_id")?,
        session_external_id: row
            .try_get::<Option<String>, _>("session_external_id")?
            .unwrap_or_default(),
        message_external_id: row.try_get("external_id")?,
    }))
}

/// [`super::ActionStore::outbox_next_due`].
pub(super) async fn next_due(store: &SqlStore) -> StoreResult<Option<DateTime<Utc>>> {
    let row = sqlx::query(
        "SELECT MIN(CASE WHEN locked_until IS NOT NULL AND locked_until > next_attempt_at \
         THEN locked_until ELSE next_attempt_at END) FROM outbox",
    )
    .fetch_one(&store.pool)
    .await?;
    row.try_get::<Option<i64>, _>(0)?
        .map(from_micros)
        .transpose()
}

/// [`super::ActionStore::finish_delivery`], retried on a unique-key race.
pub(super) async fn finish(
    store: &SqlStore,
    task: &OutboxTask,
    result: &DeliveryResult,
) -> StoreResult<Option<Message>> {
    let mut tries = 0;
    loop {
        tries += 1;
        match finish_once(store, task, result).await {
            Err(StoreError::Database(e)) if tries < FINISH_TRIES && is_unique_violation(&e) => {
                tracing::info!(message_id = %task.message_id, "provider id stored concurrently; finishing again");
            }
            other => return other,
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.is_unique_violation(),
        _ => false,
    }
}

async fn load_message(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    id: &str,
) -> StoreResult<Option<(i64, Message)>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1{}",
        for_update(backend)
    );
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await?;
    row.map(|r| message_from_row(&r, false)).transpose()
}

async fn finish_once(
    store: &SqlStore,
    task: &OutboxTask,
    result: &DeliveryResult,
) -> StoreResult<Option<Message>> {
    let _guard = store.write_guard().await;
    let mut tx = store.pool.begin().await?;
    let now = Utc::now();
    account_lock::lock(&mut tx, store.backend, &task.account).await?;
    let sql = format!(
        "SELECT calls FROM outbox WHERE pk = $1{}",
        for_update(store.backend)
    );
    let Some(outbox_row) = sqlx::query(&sql)
        .bind(task.pk)
        .fetch_optional(&mut *tx)
        .await?
    else {
        // Finished by another claimer whose lease this one outlived.
        return Ok(None);
    };
    // Calls earlier claimers started: each was recorded by its own finish
    // unless its claimer died first with the answer.
    let calls: i64 = outbox_row.try_get(0)?;
    let earlier_calls = calls - i64::from(task.message_external_id.is_none());
    let Some((_, before)) = load_message(&mut tx, store.backend, &task.message_id).await? else {
        sqlx::query("DELETE FROM outbox WHERE pk = $1")
            .bind(task.pk)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(None);
    };
    let mut before_events = Vec::new();
    let mut after_events = Vec::new();
    let (status, attempts_add, last_error, done) = match result {
        DeliveryResult::Accepted(receipt) => {
            if let Some(ext) = &receipt.message_external_id {
                claim_external_id(&mut tx, &before, ext).await?;
            }
            if task.kind == OutboxKind::Outreach {
                if let Some(e) =
                    name_outreach_session(&mut tx, store.backend, task, receipt, now).await?
                {
                    before_events.push(e);
                }
            }
            ("sent", 1, None, true)
        }
        DeliveryResult::AlreadyDelivered => ("sent", 0, None, true),
        DeliveryResult::Retry {
            error,
            next_attempt_at,
        } => {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, locked_until = NULL \
                 WHERE pk = $2",
            )
            .bind(to_micros(*next_attempt_at))
            .bind(task.pk)
            .execute(&mut *tx)
            .await?;
            ("pending", 1, Some(error.as_str()), false)
        }
        DeliveryResult::Failed { error, called } => {
            if task.session_is_provisional() && task.kind == OutboxKind::Outreach {
                if let Some(e) =
                    close_provisional_session(&mut tx, store.backend, &task.session_id, now).await?
                {
                    after_events.push(e);
                }
            }
            ("failed", i64::from(*called), Some(error.as_str()), true)
        }
    };
    let recorded = before.delivery.as_ref().map_or(0, |d| d.attempts);
    let attempts = (recorded + attempts_add).max(earlier_calls + attempts_add);
    sqlx::query(
        "UPDATE messages SET delivery_status = $1, delivery_attempts = $2, \
         delivery_last_error = $3 WHERE id = $4",
    )
    .bind(status)
    .bind(attempts)
    .bind(last_error)
    .bind(&task.message_id)
    .execute(&mut *tx)
    .await?;
    if done {
        sqlx::query("DELETE FROM outbox WHERE pk = $1")
            .bind(task.pk)
            .execute(&mut *tx)
            .await?;
    }
    let Some((_, after)) = load_message(&mut tx, store.backend, &task.message_id).await? else {
        return Err(StoreError::Corrupt(
            "message vanished while finishing its delivery".into(),
        ));
    };
    let mut events = before_events;
    if after.delivery != before.delivery || after.session_id != before.session_id {
        events.extend(PendingEvent::message_change(&before, &after)?);
    }
    events.extend(after_events);
    let account = AccountRef {
        name: after.account.clone(),
        provider: after.provider.clone(),
    };
    let last = insert_events(&mut tx, store.backend, &account, now, &events).await?;
    tx.commit().await?;
    if let Some(seq) = last {
        store.announce(seq);
    }
    Ok(Some(after))
}

/// Gives the provider's message id to the message it acknowledged.
///
/// Usually the message has no id yet, or already carries this one (its echo
/// came first and was matched to it). When the echo was matched to another
/// pending send with the same content in the same session, the two swap ids:
/// both carry the same content, so each still names a real provider message.
/// When the id belongs to a message the gateway did not send (an echo stored
/// as new because nothing matched), the message keeps no id rather than
/// break uniqueness; a warning says so.
async fn claim_external_id(
    tx: &mut Transaction<'_, Any>,
    m: &Message,
    ext: &str,
) -> StoreResult<()> {
    if m.external_id.as_deref() == Some(ext) {
        return Ok(());
    }
    let holder = sqlx::query(
        "SELECT id, session_id, delivery_status FROM messages WHERE account = $1 AND external_id = $2",
    )
    .bind(&m.account)
    .bind(ext)
    .fetch_optional(&mut **tx)
    .await?;
    match holder {
        None => {}
        Some(h) => {
            let holder_id: String = h.try_get("id")?;
            let holder_session: String = h.try_get("session_id")?;
            let holder_delivery: Option<String> = h.try_get("delivery_status")?;
            if holder_delivery.is_none() || holder_session != m.session_id {
                tracing::warn!(
                    message_id = %m.id,
                    other_message_id = %holder_id,
                    external_id = %ext,
                    "the provider's echo of a send was stored as a separate message; \
                     the sent message keeps no provider id"
                );
                return Ok(());
            }
            sqlx::query("UPDATE messages SET external_id = NULL WHERE id = $1")
                .bind(&m.id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("UPDATE messages SET external_id = $1 WHERE id = $2")
                .bind(m.external_id.as_deref())
                .bind(&holder_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    sqlx::query("UPDATE messages SET external_id = $1 WHERE id = $2")
        .bind(ext)
        .bind(&m.id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Outreach accepted: the provisional session takes the provider's session
/// id (`session.updated`), unless the live feed already did that. If the
/// feed stored the new session separately (its echo did not match), the
/// message moves into it and the empty provisional session is removed.
async fn name_outreach_session(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    task: &OutboxTask,
    receipt: &SendReceipt,
    now: DateTime<Utc>,
) -> StoreResult<Option<PendingEvent>> {
    let Some(new_ext) = receipt.session_external_id.as_deref() else {
        tracing::warn!(message_id = %task.message_id, "outreach accepted without a session id");
        return Ok(None);
    };
    let Some(mut prov) = load_session_by_id(tx, backend, &task.session_id).await? else {
        return Ok(None);
    };
    if prov.session.external_id == new_ext
        || !prov
            .session
            .external_id
            .starts_with(super::actions::PROVISIONAL_SESSION_PREFIX)
    {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE account = $1 AND external_id = $2{}",
        for_update(backend)
    );
    let existing = sqlx::query(&sql)
        .bind(&task.account)
        .bind(new_ext)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| session_from_row(&r, false))
        .transpose()?;
    match existing {
        None => {
            let before = prov.session.clone();
            prov.session.external_id = new_ext.to_string();
            prov.session.updated_at = now;
            write_session_external_id(tx, &prov).await?;
            write_session(tx, &prov).await?;
            PendingEvent::session_change(EventType::SessionUpdated, &before, &prov.session)
        }
        Some(mut target) => {
            let (_, m) = load_message(tx, backend, &task.message_id)
                .await?
                .ok_or_else(|| StoreError::Corrupt("outreach message vanished".into()))?;
            sqlx::query(
                "UPDATE messages SET session_id = $1, customer_external_id = $2 WHERE id = $3",
            )
            .bind(&target.session.id)
            .bind(target.session.customer.external_id.as_deref())
            .bind(&task.message_id)
            .execute(&mut **tx)
            .await?;
            count_message(&mut target, m.sender.role, m.kind, m.sent_at, now);
            write_session(tx, &target).await?;
            let left: i64 = sqlx::query("SELECT COUNT(*) FROM messages WHERE session_id = $1")
                .bind(&prov.session.id)
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
            if left == 0 {
                sqlx::query("DELETE FROM sessions WHERE pk = $1")
                    .bind(prov.pk)
                    .execute(&mut **tx)
                    .await?;
            }
            tracing::warn!(
                message_id = %task.message_id,
                session_id = %target.session.id,
                "outreach session was stored from the provider's feed first; message moved into it"
            );
            Ok(None)
        }
    }
}

async fn write_session_external_id(
    tx: &mut Transaction<'_, Any>,
    row: &super::rows::SessionRow,
) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET external_id = $1 WHERE pk = $2")
        .bind(&row.session.external_id)
        .bind(row.pk)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An outreach the provider never started: its provisional session ends.
async fn close_provisional_session(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    session_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<PendingEvent>> {
    let Some(mut row) = load_session_by_id(tx, backend, session_id).await? else {
        return Ok(None);
    };
    if row.session.status == chat_core::SessionStatus::Closed {
        return Ok(None);
    }
    let before = row.session.clone();
    row.session.status = chat_core::SessionStatus::Closed;
    row.session.closed_at = Some(now);
    row.session.updated_at = now;
    write_session(tx, &row).await?;
    PendingEvent::session_change(EventType::SessionClosed, &before, &row.session)
}

//! Recording close, restart and transfer after the provider carried them out.
//!
//! The provider's feed reports the same change later (Spark's DelSession, an
//! operation naming the new agent); ingest merges it into a row that already
//! says so and writes nothing. When the feed came first, the action here
//! finds the row already changed and writes nothing either.

use chat_core::{EventType, Participant, Session, SessionStatus};
use chrono::Utc;
use sqlx::Row;

use super::account_lock;
use super::actions::{NewSend, SessionAction};
use super::ingest::{insert_events, write_session, PendingEvent};
use super::sends::{add_send, load_session_by_id};
use super::sql::SqlStore;
use super::{AccountRef, StoreError, StoreResult};

/// [`super::ActionStore::apply_session_action`].
pub(super) async fn apply(
    store: &SqlStore,
    session_id: &str,
    action: &SessionAction,
    notify: Option<&NewSend>,
) -> StoreResult<Session> {
    let _guard = store.write_guard().await;
    let mut tx = store.pool.begin().await?;
    let now = Utc::now();
    let account: Option<String> = sqlx::query("SELECT account FROM sessions WHERE id = $1")
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let account = account.ok_or(StoreError::NotFound)?;
    account_lock::lock(&mut tx, store.backend, &account).await?;
    let mut row = load_session_by_id(&mut tx, store.backend, session_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let mut events = Vec::new();
    let before = row.session.clone();
    let s = &mut row.session;
    match action {
        SessionAction::Close if s.status == SessionStatus::Open => {
            s.status = SessionStatus::Closed;
            s.closed_at = Some(now);
            s.updated_at = now;
            events.extend(PendingEvent::session_change(
                EventType::SessionClosed,
                &before,
                s,
            )?);
        }
        SessionAction::Restart if s.status == SessionStatus::Closed => {
            s.status = SessionStatus::Open;
            s.closed_at = None;
            s.updated_at = now;
            events.extend(PendingEvent::session_change(
                EventType::SessionReopened,
                &before,
                s,
            )?);
        }
        SessionAction::Transfer { agent_id }
            if s.agent.as_ref().and_then(|a| a.external_id.as_deref())
                != Some(agent_id.as_str()) =>
        {
            // The new assignment starts at the hand-over: first-response
            // timing waits for the new agent's first message.
            s.agent = Some(Participant {
                external_id: Some(agent_id.clone()),
                name: None,
                avatar_url: None,
            });
            s.assigned_at = Some(now);
            s.first_response_at = None;
            s.updated_at = now;
            row.assignment_started_at = Some(now);
            events.extend(PendingEvent::session_change(
                EventType::SessionTransferred,
                &before,
                &row.session,
            )?);
        }
        _ => {}
    }
    if let Some(send) = notify {
        events.push(add_send(&mut tx, &mut row, send, now).await?);
    }
    write_session(&mut tx, &row).await?;
    let account = AccountRef {
        name: row.session.account.clone(),
        provider: row.session.provider.clone(),
    };
    let last = insert_events(&mut tx, store.backend, &account, now, &events).await?;
    tx.commit().await?;
    if let Some(seq) = last {
        store.announce(seq);
    }
    Ok(row.session)
}

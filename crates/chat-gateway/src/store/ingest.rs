//! Applying provider changes: the one write path for synced data.
//!
//! One call is one transaction. Sessions are upserted on `(account,
//! external_id)` and merged field by field (a provider answer that omits a
//! field leaves it alone); messages are inserted with `ON CONFLICT DO
//! NOTHING`, so re-delivery changes nothing and writes no event. Events are
//! collected in memory and inserted last, which keeps the PostgreSQL event
//! lock (see [`super::postgres`]) held only for the final inserts and commit.

use chat_core::{
    EventType, MessageKind, Participant, ProviderMessage, ProviderSession, Role, Session,
    SessionChange, SessionStatus,
};
use chrono::{DateTime, Utc};
use sqlx::{Any, Row, Transaction};
use std::collections::HashMap;

use super::rows::{search_text, session_from_row, to_micros, SessionRow, SESSION_COLUMNS};
use super::sql::{bind_all, Bind, SqlStore};
use super::{
    account_lock, echo, postgres, AccountRef, Backend, IngestSummary, StoreError, StoreResult,
};
use crate::ids::new_id;

/// An event waiting to be inserted at the end of the transaction.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    pub event_type: EventType,
    pub session_id: String,
    pub message_id: Option<String>,
    pub data: String,
}

impl PendingEvent {
    pub(crate) fn session(t: EventType, s: &Session) -> StoreResult<PendingEvent> {
        Ok(PendingEvent {
            event_type: t,
            session_id: s.id.clone(),
            message_id: None,
            data: to_json(s)?,
        })
    }
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) async fn run(
    store: &SqlStore,
    account: &AccountRef,
    changes: &[SessionChange],
    checkpoint: Option<&str>,
    lease_owner: Option<&str>,
) -> StoreResult<IngestSummary> {
    let _guard = store.write_guard().await;
    let mut tx = store.pool.begin().await?;
    // Serialises with the API's writes to this account (PostgreSQL).
    account_lock::lock(&mut tx, store.backend, &account.name).await?;
    let now = Utc::now();
    let mut summary = IngestSummary::default();
    let mut events = Vec::new();
    let mut cache: HashMap<String, SessionRow> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for change in changes {
        let cleaned;
        let change = if change_has_nul(change) {
            tracing::warn!(account = %account.name, session = %change.session.external_id,
                "provider data held NUL characters; removed");
            cleaned = strip_nul(change);
            &cleaned
        } else {
            change
        };
        apply_change(
            &mut tx,
            account,
            change,
            now,
            &mut cache,
            &mut seen,
            &mut events,
            &mut summary,
        )
        .await?;
    }
    for row in cache.values() {
        write_session(&mut tx, row).await?;
    }
    if let Some(cursor) = checkpoint {
        save_checkpoint(&mut tx, account, cursor, lease_owner, now).await?;
    }
    let last_seq = insert_events(&mut tx, store.backend, account, now, &events).await?;
    summary.events = events.len() as u64;
    tx.commit().await?;
    if let Some(seq) = last_seq {
        store.announce(seq);
    }
    Ok(summary)
}

/// Whether any stored string of a change holds a NUL, which PostgreSQL text
/// cannot store (one such message must not jam a worker).
fn change_has_nul(c: &SessionChange) -> bool {
    let nul = |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains('\0'));
    let p = |p: &Option<Participant>| {
        p.as_ref()
            .is_some_and(|p| nul(&p.external_id) || nul(&p.name) || nul(&p.avatar_url))
    };
    let s = &c.session;
    s.external_id.contains('\0')
        || nul(&s.channel)
        || nul(&s.rating)
        || nul(&s.fingerprint)
        || p(&s.customer)
        || p(&s.agent)
        || c.messages.iter().any(|m| {
            m.external_id.contains('\0')
                || m.session_external_id.contains('\0')
                || nul(&m.text)
                || nul(&m.event)
                || nul(&m.sender.external_id)
                || nul(&m.sender.name)
                || nul(&m.sender.avatar_url)
                || m.media.as_ref().is_some_and(|x| {
                    nul(&x.url) || nul(&x.file_id) || nul(&x.mime_type) || nul(&x.file_name)
                })
                || m.card.as_ref().is_some_and(|x| {
                    nul(&x.title)
                        || nul(&x.description)
                        || nul(&x.media_file_id)
                        || nul(&x.redirect_url)
                })
        })
}

/// The change with NULs removed from every string (raw JSON keeps them,
/// escaped, which text columns accept).
fn strip_nul(c: &SessionChange) -> SessionChange {
    match serde_json::to_value(c).map(remove_nul).and_then(|mut v| {
        // `raw` stays exactly as the provider sent it.
        if let Some(msgs) = v["messages"].as_array_mut() {
            for (m, orig) in msgs.iter_mut().zip(&c.messages) {
                m["raw"] = orig.raw.clone();
            }
        }
        v["session"]["raw"] = serde_json::to_value(&c.session.raw).unwrap_or_default();
        serde_json::from_value(v)
    }) {
        Ok(clean) => clean,
        Err(_) => c.clone(),
    }
}

fn remove_nul(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(s.replace('\0', "")),
        Value::Array(a) => Value::Array(a.into_iter().map(remove_nul).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, remove_nul(v))).collect()),
        other => other,
    }
}

async fn load_session(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    external_id: &str,
) -> StoreResult<Option<SessionRow>> {
    let sql =
        format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE account = $1 AND external_id = $2");
    let row = sqlx::query(&sql)
        .bind(account)
        .bind(external_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| session_from_row(&r, false)).transpose()
}

fn merge_participant(into: &mut Participant, from: &Participant) -> bool {
    let mut changed = false;
    for (dst, src) in [
        (&mut into.external_id, &from.external_id),
        (&mut into.name, &from.name),
        (&mut into.avatar_url, &from.avatar_url),
    ] {
        if src.is_some() && dst != src {
            dst.clone_from(src);
            changed = true;
        }
    }
    changed
}

fn set_if_some<T: PartialEq + Clone>(dst: &mut Option<T>, src: &Option<T>) -> bool {
    if src.is_some() && dst != src {
        dst.clone_from(src);
        true
    } else {
        false
    }
}

fn new_session_row(
    account: &AccountRef,
    p: &ProviderSession,
    messages: &[ProviderMessage],
    now: DateTime<Utc>,
) -> SessionRow {
    let first_sent = messages.iter().map(|m| m.sent_at).min();
    let created_at = match (p.created_at, first_sent) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(now),
    };
    let status = p.status.unwrap_or(SessionStatus::Open);
    let closed_at = match status {
        SessionStatus::Closed => Some(
            p.closed_at
                .or_else(|| messages.iter().map(|m| m.sent_at).max())
                .unwrap_or(now),
        ),
        SessionStatus::Open => None,
    };
    let agent = p.agent.clone().filter(|a| !a.is_empty());
    SessionRow {
        pk: 0,
        session: Session {
            id: new_id("ses"),
            provider: account.provider.clone(),
            account: account.name.clone(),
            external_id: p.external_id.clone(),
            status,
            channel: p.channel.clone(),
            customer: p.customer.clone().unwrap_or_default(),
            agent,
            started_by: p.started_by,
            rating: p.rating.clone(),
            created_at,
            assigned_at: p.assigned_at,
            closed_at,
            first_response_at: None,
            last_message_at: None,
            updated_at: now,
            message_count: 0,
            raw: None,
        },
        assignment_started_at: Some(p.assigned_at.unwrap_or(created_at)),
        fingerprint: p.fingerprint.clone(),
        raw_text: p.raw.as_ref().map(|v| v.to_string()),
    }
}

/// What merging a provider view into a stored session did.
#[derive(Default)]
struct Merge {
    updated: bool,
    transferred: bool,
    reopened: bool,
    closed: bool,
}

/// Whether a change whose newest message was sent at `newest` is older than
/// `reference`: a redelivered view from before a close or a hand-over, which
/// must not reopen the session or hand it back. Provider times may be
/// whole seconds, hence the one-second allowance.
fn predates(newest: Option<DateTime<Utc>>, reference: Option<DateTime<Utc>>) -> bool {
    match (newest, reference) {
        (Some(n), Some(r)) => n + chrono::Duration::seconds(1) < r,
        _ => false,
    }
}

fn merge_session(
    row: &mut SessionRow,
    p: &ProviderSession,
    newest_message: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Merge {
    let stale_agent = predates(newest_message, row.assignment_started_at);
    let s = &mut row.session;
    let mut m = Merge::default();
    let stale_reopen = predates(newest_message, s.closed_at);
    match (s.status, p.status) {
        (SessionStatus::Open, Some(SessionStatus::Closed)) => {
            s.status = SessionStatus::Closed;
            s.closed_at = Some(p.closed_at.unwrap_or(now));
            m.closed = true;
        }
        (SessionStatus::Closed, Some(SessionStatus::Open)) if !stale_reopen => {
            s.status = SessionStatus::Open;
            s.closed_at = None;
            m.reopened = true;
        }
        (SessionStatus::Closed, Some(SessionStatus::Closed)) => {
            m.updated |= set_if_some(&mut s.closed_at, &p.closed_at);
        }
        _ => {}
    }
    if let Some(agent) = p.agent.as_ref().filter(|a| !a.is_empty() && !stale_agent) {
        let previous = s.agent.as_ref().and_then(|a| a.external_id.clone());
        let is_new_agent =
            agent.external_id.is_some() && previous.is_some() && agent.external_id != previous;
        let mut current = s.agent.clone().unwrap_or_default();
        if merge_participant(&mut current, agent) {
            s.agent = Some(current);
            if is_new_agent {
                // A hand-over made at the provider: first-response timing
                // starts again from it.
                m.transferred = true;
                s.first_response_at = None;
                row.assignment_started_at = Some(p.assigned_at.unwrap_or(now));
            } else {
                m.updated = true;
            }
        }
    }
    if let Some(c) = &p.customer {
        m.updated |= merge_participant(&mut s.customer, c);
    }
    m.updated |= set_if_some(&mut s.channel, &p.channel);
    m.updated |= set_if_some(&mut s.started_by, &p.started_by);
    m.updated |= set_if_some(&mut s.rating, &p.rating);
    if set_if_some(&mut s.assigned_at, &p.assigned_at) {
        m.updated = true;
        if !m.transferred {
            row.assignment_started_at = p.assigned_at;
        }
    }
    if let Some(c) = p.created_at {
        if c < s.created_at {
            s.created_at = c;
            m.updated = true;
        }
    }
    // Silent bookkeeping: no event, no `updated_at` bump.
    set_if_some(&mut row.fingerprint, &p.fingerprint);
    if let Some(raw) = &p.raw {
        row.raw_text = Some(raw.to_string());
    }
    m
}

#[allow(clippy::too_many_arguments)]
async fn apply_change(
    tx: &mut Transaction<'_, Any>,
    account: &AccountRef,
    change: &SessionChange,
    now: DateTime<Utc>,
    cache: &mut HashMap<String, SessionRow>,
    seen: &mut std::collections::HashSet<String>,
    events: &mut Vec<PendingEvent>,
    summary: &mut IngestSummary,
) -> StoreResult<()> {
    let p = &change.session;
    let mut before = Vec::new();
    let mut after = Vec::new();
    // The echo of a gateway outreach: its provisional session takes the
    // provider's id instead of a second session being made (see `echo`).
    let mut adopted = false;
    if !cache.contains_key(&p.external_id) {
        if let Some(row) = echo::adopt_outreach_session(tx, account, change, now).await? {
            cache.insert(p.external_id.clone(), row);
            adopted = true;
        }
    }
    if !cache.contains_key(&p.external_id) {
        match load_session(tx, &account.name, &p.external_id).await? {
            Some(row) => {
                cache.insert(p.external_id.clone(), row);
            }
            None => {
                let mut row = new_session_row(account, p, &change.messages, now);
                row.pk = insert_session(tx, &row).await?;
                summary.sessions_created += 1;
                before.push(EventType::SessionOpened);
                if row.session.status == SessionStatus::Closed {
                    after.push(EventType::SessionClosed);
                }
                cache.insert(p.external_id.clone(), row);
            }
        }
    }
    let Some(row) = cache.get_mut(&p.external_id) else {
        return Err(StoreError::Corrupt(
            "session vanished from the batch cache".into(),
        ));
    };
    if before.is_empty() {
        let newest = change.messages.iter().map(|msg| msg.sent_at).max();
        let m = merge_session(row, p, newest, now);
        if m.reopened {
            before.push(EventType::SessionReopened);
        }
        if m.transferred {
            before.push(EventType::SessionTransferred);
        }
        if m.closed {
            after.push(EventType::SessionClosed);
        }
        if (m.updated || adopted) && !(m.reopened || m.transferred || m.closed) {
            before.push(EventType::SessionUpdated);
        }
        if m.updated || adopted || m.reopened || m.transferred || m.closed {
            row.session.updated_at = now;
        }
    }
    let mut message_events = Vec::new();
    // Each message once per call (providers may repeat one within an answer).
    let fresh: Vec<&ProviderMessage> = change
        .messages
        .iter()
        .filter(|m| seen.insert(m.external_id.clone()))
        .collect();
    // The echo of a send made through the gateway updates that message
    // instead of adding a second one, and emits nothing (see `echo`). One
    // query tells whether this session has any send an echo could match.
    let check_echo = fresh.iter().any(|m| echo::may_be_echo(m))
        && echo::has_unclaimed_sends(tx, &row.session.id, now).await?;
    let mut to_insert = Vec::with_capacity(fresh.len());
    for m in fresh {
        if check_echo && echo::adopt_echo(tx, account, &row.session.id, m, now).await? {
            continue;
        }
        to_insert.push(m);
    }
    for chunk in to_insert.chunks(MESSAGE_BATCH) {
        for ev in insert_messages(tx, account, row, chunk, now).await? {
            summary.messages_created += 1;
            message_events.push(ev);
        }
    }
    for t in before {
        events.push(PendingEvent::session(t, &row.session)?);
    }
    events.extend(message_events);
    for t in after {
        events.push(PendingEvent::session(t, &row.session)?);
    }
    Ok(())
}

/// The session columns ingest may change, in the order
/// [`bind_session_fields`] binds them.
const SESSION_FIELDS: [&str; 20] = [
    "status",
    "channel",
    "customer_external_id",
    "customer_name",
    "customer_avatar_url",
    "agent_external_id",
    "agent_name",
    "agent_avatar_url",
    "started_by",
    "rating",
    "created_at",
    "assigned_at",
    "closed_at",
    "assignment_started_at",
    "first_response_at",
    "last_message_at",
    "updated_at",
    "message_count",
    "fingerprint",
    "raw",
];

/// Binds [`SESSION_FIELDS`] of `row`, in order.
fn bind_session_fields<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    row: &'q SessionRow,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    let s = &row.session;
    let agent = s.agent.as_ref();
    q.bind(s.status.as_str())
        .bind(s.channel.as_deref())
        .bind(s.customer.external_id.as_deref())
        .bind(s.customer.name.as_deref())
        .bind(s.customer.avatar_url.as_deref())
        .bind(agent.and_then(|a| a.external_id.as_deref()))
        .bind(agent.and_then(|a| a.name.as_deref()))
        .bind(agent.and_then(|a| a.avatar_url.as_deref()))
        .bind(s.started_by.map(|b| b.as_str()))
        .bind(s.rating.as_deref())
        .bind(to_micros(s.created_at))
        .bind(s.assigned_at.map(to_micros))
        .bind(s.closed_at.map(to_micros))
        .bind(row.assignment_started_at.map(to_micros))
        .bind(s.first_response_at.map(to_micros))
        .bind(s.last_message_at.map(to_micros))
        .bind(to_micros(s.updated_at))
        .bind(s.message_count)
        .bind(row.fingerprint.as_deref())
        .bind(row.raw_text.as_deref())
}

/// Inserts a new session row; returns its pk.
pub(crate) async fn insert_session(
    tx: &mut Transaction<'_, Any>,
    row: &SessionRow,
) -> StoreResult<i64> {
    let s = &row.session;
    let placeholders: Vec<String> = (5..5 + SESSION_FIELDS.len())
        .map(|i| format!("${i}"))
        .collect();
    let sql = format!(
        "INSERT INTO sessions (id, account, provider, external_id, {}) VALUES ($1, $2, $3, $4, {}) RETURNING pk",
        SESSION_FIELDS.join(", "),
        placeholders.join(", ")
    );
    let q = sqlx::query(&sql)
        .bind(&s.id)
        .bind(&s.account)
        .bind(&s.provider)
        .bind(&s.external_id);
    let pk: i64 = bind_session_fields(q, row)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    Ok(pk)
}

/// Writes back every column ingest may change.
pub(crate) async fn write_session(
    tx: &mut Transaction<'_, Any>,
    row: &SessionRow,
) -> StoreResult<()> {
    let sets: Vec<String> = SESSION_FIELDS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    let sql = format!(
        "UPDATE sessions SET {} WHERE pk = ${}",
        sets.join(", "),
        SESSION_FIELDS.len() + 1
    );
    bind_session_fields(sqlx::query(&sql), row)
        .bind(row.pk)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Counts a newly stored message into its session's derived fields.
///
/// Only an agent's real reply ends first-response timing: typing and read
/// receipts an agent triggers are events, not responses.
pub(crate) fn count_message(
    row: &mut SessionRow,
    role: Role,
    kind: MessageKind,
    sent_at: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let s = &mut row.session;
    s.message_count += 1;
    s.last_message_at = Some(s.last_message_at.map_or(sent_at, |t| t.max(sent_at)));
    if sent_at < s.created_at {
        s.created_at = sent_at;
    }
    if role == Role::Agent && kind != MessageKind::Event && s.first_response_at.is_none() {
        let started = row.assignment_started_at.unwrap_or(s.created_at);
        if sent_at >= started {
            s.first_response_at = Some(sent_at);
        }
    }
    s.updated_at = now;
}

/// Messages per multi-row INSERT (20 columns each: well under both
/// backends' parameter limits).
const MESSAGE_BATCH: usize = 100;

/// The message columns an insert writes, in bind order.
const MESSAGE_FIELDS: [&str; 20] = [
    "id",
    "session_id",
    "account",
    "provider",
    "external_id",
    "customer_external_id",
    "direction",
    "sender_role",
    "sender_external_id",
    "sender_name",
    "sender_avatar_url",
    "kind",
    "text",
    "search_text",
    "media",
    "card",
    "event",
    "sent_at",
    "received_at",
    "raw",
];

/// Inserts messages of one session in one statement, skipping those already
/// stored; counts the new ones into the session and returns their events,
/// in provider order.
async fn insert_messages(
    tx: &mut Transaction<'_, Any>,
    account: &AccountRef,
    row: &mut SessionRow,
    messages: &[&ProviderMessage],
    now: DateTime<Utc>,
) -> StoreResult<Vec<PendingEvent>> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut binds = Vec::with_capacity(messages.len() * MESSAGE_FIELDS.len());
    let mut values = Vec::with_capacity(messages.len());
    let mut ids = Vec::with_capacity(messages.len());
    for m in messages {
        let id = new_id("msg");
        let n = binds.len();
        values.push(format!(
            "({})",
            (1..=MESSAGE_FIELDS.len())
                .map(|i| format!("${}", n + i))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        binds.extend([
            Bind::Text(id.clone()),
            Bind::Text(row.session.id.clone()),
            Bind::Text(account.name.clone()),
            Bind::Text(account.provider.clone()),
            Bind::Text(m.external_id.clone()),
            Bind::OptText(row.session.customer.external_id.clone()),
            Bind::Text(m.direction().as_str().to_string()),
            Bind::Text(m.sender.role.as_str().to_string()),
            Bind::OptText(m.sender.external_id.clone()),
            Bind::OptText(m.sender.name.clone()),
            Bind::OptText(m.sender.avatar_url.clone()),
            Bind::Text(m.kind.as_str().to_string()),
            Bind::OptText(m.text.clone()),
            Bind::OptText(search_text(m.text.as_deref())),
            Bind::OptText(m.media.as_ref().map(to_json).transpose()?),
            Bind::OptText(m.card.as_ref().map(to_json).transpose()?),
            Bind::OptText(m.event.clone()),
            Bind::Int(to_micros(m.sent_at)),
            Bind::OptInt(m.received_at.map(to_micros)),
            Bind::Text(m.raw.to_string()),
        ]);
        ids.push(id);
    }
    let sql = format!(
        "INSERT INTO messages ({}) VALUES {} ON CONFLICT (account, external_id) DO NOTHING \
         RETURNING external_id",
        MESSAGE_FIELDS.join(", "),
        values.join(", ")
    );
    let inserted: std::collections::HashSet<String> = bind_all(sqlx::query(&sql), &binds)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    let mut events = Vec::with_capacity(inserted.len());
    for (m, id) in messages.iter().zip(ids) {
        if !inserted.contains(&m.external_id) {
            continue;
        }
        count_message(row, m.sender.role, m.kind, m.sent_at, now);
        let message = chat_core::Message {
            id: id.clone(),
            session_id: row.session.id.clone(),
            provider: account.provider.clone(),
            account: account.name.clone(),
            external_id: Some(m.external_id.clone()),
            direction: m.direction(),
            sender: m.sender.clone(),
            kind: m.kind,
            text: m.text.clone(),
            media: m.media.clone(),
            card: m.card.clone(),
            event: m.event.clone(),
            sent_at: m.sent_at,
            received_at: m.received_at,
            delivery: None,
            raw: None,
        };
        events.push(PendingEvent {
            event_type: EventType::MessageCreated,
            session_id: row.session.id.clone(),
            message_id: Some(id),
            data: to_json(&message)?,
        });
    }
    Ok(events)
}

async fn save_checkpoint(
    tx: &mut Transaction<'_, Any>,
    account: &AccountRef,
    cursor: &str,
    lease_owner: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if let Some(owner) = lease_owner {
        // Fenced: only the current lease holder moves the cursor.
        let done = sqlx::query(
            "UPDATE sync_state SET cursor = $1, updated_at = $2 \
             WHERE account = $3 AND lease_owner = $4 AND lease_until >= $5",
        )
        .bind(cursor)
        .bind(to_micros(now))
        .bind(&account.name)
        .bind(owner)
        .bind(to_micros(now))
        .execute(&mut **tx)
        .await?;
        return if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost)
        };
    }
    sqlx::query(
        "INSERT INTO sync_state (account, provider, cursor, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (account) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
    )
    .bind(&account.name)
    .bind(&account.provider)
    .bind(cursor)
    .bind(to_micros(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts the transaction's events as its last step; returns the highest
/// `seq` written. On PostgreSQL the advisory lock taken here is held until
/// commit, so `seq` order is commit order.
pub(crate) async fn insert_events(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    account: &AccountRef,
    now: DateTime<Utc>,
    events: &[PendingEvent],
) -> StoreResult<Option<i64>> {
    if events.is_empty() {
        return Ok(None);
    }
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(postgres::EVENT_LOCK_KEY)
            .execute(&mut **tx)
            .await?;
    }
    let mut last = None;
    for chunk in events.chunks(500) {
        let mut binds = Vec::with_capacity(chunk.len() * 7);
        let mut values = Vec::with_capacity(chunk.len());
        for e in chunk {
            let n = binds.len();
            values.push(format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6,
                n + 7
            ));
            binds.push(Bind::Text(e.event_type.as_str().to_string()));
            binds.push(Bind::Int(to_micros(now)));
            binds.push(Bind::Text(account.name.clone()));
            binds.push(Bind::Text(account.provider.clone()));
            binds.push(Bind::Text(e.session_id.clone()));
            binds.push(Bind::OptText(e.message_id.clone()));
            binds.push(Bind::Text(e.data.clone()));
        }
        let sql = format!(
            "INSERT INTO events (type, at, account, provider, session_id, message_id, data) \
             VALUES {} RETURNING seq",
            values.join(", ")
        );
        let rows = bind_all(sqlx::query(&sql), &binds)
            .fetch_all(&mut **tx)
            .await?;
        for r in rows {
            let seq: i64 = r.try_get(0)?;
            last = Some(last.map_or(seq, |l: i64| l.max(seq)));
        }
    }
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(postgres::NOTIFY_CHANNEL)
            .bind(last.unwrap_or(0).to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(last)
}

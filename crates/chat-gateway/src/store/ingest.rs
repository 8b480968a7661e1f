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
use super::sql::{bind_all, Bind, Placeholders, SqlStore};
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
    /// The `changes` object as JSON text; `None` for creations.
    pub changes: Option<String>,
}

impl PendingEvent {
    /// A creation event about a session (`session.opened`): no `changes`.
    pub(crate) fn session(t: EventType, s: &Session) -> StoreResult<PendingEvent> {
        Ok(PendingEvent {
            event_type: t,
            session_id: s.id.clone(),
            message_id: None,
            data: to_json(s)?,
            changes: None,
        })
    }

    /// A session change from `before` to `after`, or `None` when no listed
    /// field differs (only real change is an event).
    pub(crate) fn session_change(
        t: EventType,
        before: &Session,
        after: &Session,
    ) -> StoreResult<Option<PendingEvent>> {
        let after_json = to_value(after)?;
        let Some(changes) = changes_json(&to_value(before)?, &after_json)? else {
            return Ok(None);
        };
        Ok(Some(PendingEvent {
            event_type: t,
            session_id: after.id.clone(),
            message_id: None,
            data: after_json.to_string(),
            changes: Some(changes),
        }))
    }

    /// A message creation (`message.created`): no `changes`.
    pub(crate) fn message_created(m: &chat_core::Message) -> StoreResult<PendingEvent> {
        Ok(PendingEvent {
            event_type: EventType::MessageCreated,
            session_id: m.session_id.clone(),
            message_id: Some(m.id.clone()),
            data: to_json(m)?,
            changes: None,
        })
    }

    /// `message.updated` from `before` to `after`, or `None` when no listed
    /// field differs.
    pub(crate) fn message_change(
        before: &chat_core::Message,
        after: &chat_core::Message,
    ) -> StoreResult<Option<PendingEvent>> {
        let after_json = to_value(after)?;
        let Some(changes) = changes_json(&to_value(before)?, &after_json)? else {
            return Ok(None);
        };
        Ok(Some(PendingEvent {
            event_type: EventType::MessageUpdated,
            session_id: after.session_id.clone(),
            message_id: Some(after.id.clone()),
            data: after_json.to_string(),
            changes: Some(changes),
        }))
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> StoreResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The `changes` text between two serialisations; `None` when empty.
fn changes_json(
    before: &serde_json::Value,
    after: &serde_json::Value,
) -> StoreResult<Option<String>> {
    let changes = chat_core::event::changes_between(before, after);
    if changes.is_empty() {
        return Ok(None);
    }
    Ok(Some(to_json(&changes)?))
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
    let cleaned: Vec<std::borrow::Cow<'_, SessionChange>> = changes
        .iter()
        .map(|change| {
            if change_has_nul(change) {
                tracing::warn!(account = %account.name, session = %change.session.external_id,
                    "provider data held NUL characters; removed");
                std::borrow::Cow::Owned(strip_nul(change))
            } else {
                std::borrow::Cow::Borrowed(change)
            }
        })
        .collect();
    let changes: Vec<&SessionChange> = cleaned.iter().map(|c| c.as_ref()).collect();
    let mut batch = Batch::load(&mut tx, account, &changes, now).await?;
    let planned = batch.plan_messages(&mut tx, account, &changes, now).await?;
    let mut inserted = std::collections::HashSet::new();
    for chunk in planned.chunks(MESSAGE_BATCH) {
        inserted.extend(insert_messages(&mut tx, account, chunk).await?);
    }
    let (events, mut summary) = batch.apply(account, &changes, &planned, &inserted, now)?;
    batch.write(&mut tx).await?;
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

/// A message ingest will try to insert, with the gateway id it gets.
struct PlannedMessage<'a> {
    change: usize,
    id: String,
    session_id: String,
    customer_id: Option<String>,
    message: &'a ProviderMessage,
}

/// The sessions one ingest call touches, loaded once and written once.
struct Batch {
    rows: HashMap<String, SessionRow>,
    /// As loaded, to write back only what changed.
    original: HashMap<String, SessionRow>,
    /// Sessions this call creates, by the change that first named them.
    created_by: HashMap<String, usize>,
    /// Provisional outreach sessions renamed to a provider id by this call:
    /// provider id to the provisional id it replaced.
    adopted: HashMap<String, String>,
    /// Sessions holding gateway sends an echo could claim.
    unclaimed: std::collections::HashSet<String>,
}

impl Batch {
    /// Reads every session the changes name in one query, adopts outreach
    /// sessions for unknown ones, and finds sessions with unclaimed sends.
    async fn load(
        tx: &mut Transaction<'_, Any>,
        account: &AccountRef,
        changes: &[&SessionChange],
        now: DateTime<Utc>,
    ) -> StoreResult<Batch> {
        let mut ids: Vec<String> = Vec::new();
        let mut first_change: HashMap<String, usize> = HashMap::new();
        for (i, c) in changes.iter().enumerate() {
            if !first_change.contains_key(&c.session.external_id) {
                first_change.insert(c.session.external_id.clone(), i);
                ids.push(c.session.external_id.clone());
            }
        }
        let mut rows = load_sessions(tx, &account.name, &ids).await?;
        let mut adopted = HashMap::new();
        let unknown: Vec<&String> = ids.iter().filter(|id| !rows.contains_key(*id)).collect();
        if !unknown.is_empty() && echo::has_provisional_sessions(tx, &account.name).await? {
            for id in unknown {
                let change = changes[first_change[id]];
                if let Some((row, provisional)) =
                    echo::adopt_outreach_session(tx, account, change, now).await?
                {
                    rows.insert(id.clone(), row);
                    adopted.insert(id.clone(), provisional);
                }
            }
        }
        let session_ids: Vec<String> = rows.values().map(|r| r.session.id.clone()).collect();
        let unclaimed = echo::sessions_with_unclaimed_sends(tx, &session_ids, now).await?;
        Ok(Batch {
            original: rows.clone(),
            rows,
            created_by: HashMap::new(),
            adopted,
            unclaimed,
        })
    }

    /// In provider order: creates rows for new sessions (in memory), keeps
    /// each message once, lets echoes of gateway sends claim them, and
    /// returns the messages to insert.
    async fn plan_messages<'a>(
        &mut self,
        tx: &mut Transaction<'_, Any>,
        account: &AccountRef,
        changes: &[&'a SessionChange],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<PlannedMessage<'a>>> {
        let mut seen = std::collections::HashSet::new();
        let mut planned = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            let key = &change.session.external_id;
            if !self.rows.contains_key(key) {
                self.rows.insert(
                    key.clone(),
                    new_session_row(account, &change.session, &change.messages, now),
                );
                self.created_by.insert(key.clone(), i);
            }
            let Some(row) = self.rows.get(key) else {
                return Err(StoreError::Corrupt(
                    "session vanished from the batch".into(),
                ));
            };
            let (session_id, customer_id) = (
                row.session.id.clone(),
                row.session.customer.external_id.clone(),
            );
            let check_echo = self.unclaimed.contains(&session_id);
            // Each message once per call (providers may repeat one within an answer).
            for m in change
                .messages
                .iter()
                .filter(|m| seen.insert(m.external_id.clone()))
            {
                // The echo of a send made through the gateway updates that
                // message instead of adding a second one (see `echo`).
                if check_echo
                    && echo::may_be_echo(m)
                    && echo::adopt_echo(tx, account, &session_id, m, now).await?
                {
                    continue;
                }
                planned.push(PlannedMessage {
                    change: i,
                    id: new_id("msg"),
                    session_id: session_id.clone(),
                    customer_id: customer_id.clone(),
                    message: m,
                });
            }
        }
        Ok(planned)
    }

    /// In provider order and in memory: merges each change into its session,
    /// counts the messages that were stored, and builds the events.
    fn apply(
        &mut self,
        account: &AccountRef,
        changes: &[&SessionChange],
        planned: &[PlannedMessage<'_>],
        inserted: &std::collections::HashSet<String>,
        now: DateTime<Utc>,
    ) -> StoreResult<(Vec<PendingEvent>, IngestSummary)> {
        let mut summary = IngestSummary {
            sessions_created: self.created_by.len() as u64,
            ..Default::default()
        };
        let mut events = Vec::new();
        let mut next = planned.iter().peekable();
        for (i, change) in changes.iter().enumerate() {
            let p = &change.session;
            let Some(row) = self.rows.get_mut(&p.external_id) else {
                return Err(StoreError::Corrupt(
                    "session vanished from the batch".into(),
                ));
            };
            // Session events compare the row before this change with the
            // row after it; a change that moved nothing listed emits none.
            let mut before_state = row.session.clone();
            let mut before = Vec::new();
            let mut after = Vec::new();
            if self.created_by.get(&p.external_id) == Some(&i) {
                before.push(EventType::SessionOpened);
                if row.session.status == SessionStatus::Closed {
                    // Seen first already closed: opened, then closed.
                    before_state.status = SessionStatus::Open;
                    before_state.closed_at = None;
                    after.push(EventType::SessionClosed);
                }
            } else {
                if let Some(provisional) = self.adopted.remove(&p.external_id) {
                    before_state.external_id = provisional;
                }
                let newest = change.messages.iter().map(|msg| msg.sent_at).max();
                let m = merge_session(row, p, newest, now);
                let changed = !chat_core::event::changes_between(
                    &to_value(&before_state)?,
                    &to_value(&row.session)?,
                )
                .is_empty();
                if changed {
                    if m.reopened {
                        before.push(EventType::SessionReopened);
                    }
                    if m.transferred {
                        before.push(EventType::SessionTransferred);
                    }
                    if m.closed {
                        after.push(EventType::SessionClosed);
                    }
                    if !(m.reopened || m.transferred || m.closed) {
                        before.push(EventType::SessionUpdated);
                    }
                    row.session.updated_at = now;
                }
            }
            let mut message_events = Vec::new();
            while let Some(pm) = next.next_if(|pm| pm.change == i) {
                if !inserted.contains(&pm.message.external_id) {
                    continue;
                }
                summary.messages_created += 1;
                count_message(
                    row,
                    pm.message.sender.role,
                    pm.message.kind,
                    pm.message.sent_at,
                    now,
                );
                message_events.push(message_event(account, pm)?);
            }
            for t in before {
                events.extend(session_event(t, &before_state, &row.session)?);
            }
            events.extend(message_events);
            for t in after {
                events.extend(session_event(t, &before_state, &row.session)?);
            }
        }
        Ok((events, summary))
    }

    /// Inserts the new sessions and updates the changed ones, in as few
    /// statements as the parameter limits allow.
    async fn write(&self, tx: &mut Transaction<'_, Any>) -> StoreResult<()> {
        let mut new_rows = Vec::new();
        let mut changed = Vec::new();
        for (key, row) in &self.rows {
            if self.created_by.contains_key(key) {
                new_rows.push(row);
            } else if self.original.get(key) != Some(row) {
                changed.push(row);
            }
        }
        for chunk in new_rows.chunks(SESSION_BATCH) {
            insert_sessions(tx, chunk).await?;
        }
        for chunk in changed.chunks(SESSION_BATCH) {
            update_sessions(tx, chunk).await?;
        }
        Ok(())
    }
}

/// A session event of ingest: `session.opened` without `changes`, any
/// other type with the fields that moved from `before` to `after`.
fn session_event(
    t: EventType,
    before: &Session,
    after: &Session,
) -> StoreResult<Option<PendingEvent>> {
    if t == EventType::SessionOpened {
        return PendingEvent::session(t, after).map(Some);
    }
    PendingEvent::session_change(t, before, after)
}

/// The `message.created` event of a stored message.
fn message_event(account: &AccountRef, pm: &PlannedMessage<'_>) -> StoreResult<PendingEvent> {
    let m = pm.message;
    let message = chat_core::Message {
        id: pm.id.clone(),
        session_id: pm.session_id.clone(),
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
    PendingEvent::message_created(&message)
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

async fn load_sessions(
    tx: &mut Transaction<'_, Any>,
    account: &str,
    external_ids: &[String],
) -> StoreResult<HashMap<String, SessionRow>> {
    let mut out = HashMap::with_capacity(external_ids.len());
    for chunk in external_ids.chunks(500) {
        let style = Placeholders::of(tx);
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE account = {} AND external_id IN ({})",
            style.nth(1),
            style.list(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(account);
        for id in chunk {
            q = q.bind(id.as_str());
        }
        for r in q.fetch_all(&mut **tx).await? {
            let row = session_from_row(&r, false)?;
            out.insert(row.session.external_id.clone(), row);
        }
    }
    Ok(out)
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
    // Only a stored agent can be handed back to; a session without one
    // takes the first agent it is told of, whatever the view's age.
    let stale_agent =
        row.session.agent.is_some() && predates(newest_message, row.assignment_started_at);
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
        m.updated |= move_created_at(row, c);
    }
    // Silent bookkeeping: no event, no `updated_at` bump.
    set_if_some(&mut row.fingerprint, &p.fingerprint);
    if let Some(raw) = &p.raw {
        row.raw_text = Some(raw.to_string());
    }
    m
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

/// Sessions per multi-row statement (24 columns each).
const SESSION_BATCH: usize = 100;

/// The values of [`SESSION_FIELDS`] for `row`, in order.
fn session_field_binds(row: &SessionRow) -> [Bind; 20] {
    let s = &row.session;
    let agent = s.agent.as_ref();
    let text = |v: Option<&str>| Bind::OptText(v.map(str::to_string));
    [
        Bind::Text(s.status.as_str().to_string()),
        text(s.channel.as_deref()),
        text(s.customer.external_id.as_deref()),
        text(s.customer.name.as_deref()),
        text(s.customer.avatar_url.as_deref()),
        text(agent.and_then(|a| a.external_id.as_deref())),
        text(agent.and_then(|a| a.name.as_deref())),
        text(agent.and_then(|a| a.avatar_url.as_deref())),
        text(s.started_by.map(|b| b.as_str())),
        text(s.rating.as_deref()),
        Bind::Int(to_micros(s.created_at)),
        Bind::OptInt(s.assigned_at.map(to_micros)),
        Bind::OptInt(s.closed_at.map(to_micros)),
        Bind::OptInt(row.assignment_started_at.map(to_micros)),
        Bind::OptInt(s.first_response_at.map(to_micros)),
        Bind::OptInt(s.last_message_at.map(to_micros)),
        Bind::Int(to_micros(s.updated_at)),
        Bind::Int(s.message_count),
        text(row.fingerprint.as_deref()),
        text(row.raw_text.as_deref()),
    ]
}

fn session_key_binds(row: &SessionRow) -> [Bind; 4] {
    let s = &row.session;
    [
        Bind::Text(s.id.clone()),
        Bind::Text(s.account.clone()),
        Bind::Text(s.provider.clone()),
        Bind::Text(s.external_id.clone()),
    ]
}

fn insert_sessions_sql(style: Placeholders, rows: usize) -> String {
    format!(
        "INSERT INTO sessions (id, account, provider, external_id, {}) VALUES {}",
        SESSION_FIELDS.join(", "),
        style.tuples(rows, 4 + SESSION_FIELDS.len(), 0)
    )
}

/// Inserts a new session row; returns its pk.
pub(crate) async fn insert_session(
    tx: &mut Transaction<'_, Any>,
    row: &SessionRow,
) -> StoreResult<i64> {
    let mut binds: Vec<Bind> = session_key_binds(row).into();
    binds.extend(session_field_binds(row));
    let sql = format!(
        "{} RETURNING pk",
        insert_sessions_sql(Placeholders::of(tx), 1)
    );
    let pk: i64 = bind_all(sqlx::query(&sql), &binds)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    Ok(pk)
}

/// Inserts new session rows in one statement.
async fn insert_sessions(tx: &mut Transaction<'_, Any>, rows: &[&SessionRow]) -> StoreResult<()> {
    let mut binds = Vec::with_capacity(rows.len() * (4 + SESSION_FIELDS.len()));
    for row in rows {
        binds.extend(session_key_binds(row));
        binds.extend(session_field_binds(row));
    }
    bind_all(
        sqlx::query(&insert_sessions_sql(Placeholders::of(tx), rows.len())),
        &binds,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes back every column ingest may change.
pub(crate) async fn write_session(
    tx: &mut Transaction<'_, Any>,
    row: &SessionRow,
) -> StoreResult<()> {
    update_sessions(tx, &[row]).await
}

/// Writes back changed sessions in one statement (`UPDATE … FROM (VALUES …)`,
/// whose columns both backends name `column1…`).
async fn update_sessions(tx: &mut Transaction<'_, Any>, rows: &[&SessionRow]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let width = 1 + SESSION_FIELDS.len();
    let mut binds = Vec::with_capacity(rows.len() * width);
    for row in rows {
        binds.push(Bind::Int(row.pk));
        binds.extend(session_field_binds(row));
    }
    let sets: Vec<String> = SESSION_FIELDS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = v.column{}", i + 2))
        .collect();
    let sql = format!(
        "UPDATE sessions SET {} FROM (VALUES {}) AS v WHERE sessions.pk = v.column1",
        sets.join(", "),
        Placeholders::of(tx).tuples(rows.len(), width, 0)
    );
    bind_all(sqlx::query(&sql), &binds)
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
    row.session.message_count += 1;
    row.session.last_message_at = Some(
        row.session
            .last_message_at
            .map_or(sent_at, |t| t.max(sent_at)),
    );
    move_created_at(row, sent_at);
    // The earliest reply after the assignment began, whatever order the
    // messages arrive in.
    let s = &mut row.session;
    if role == Role::Agent && kind != MessageKind::Event {
        let started = row.assignment_started_at.unwrap_or(s.created_at);
        if sent_at >= started && s.first_response_at.is_none_or(|f| sent_at < f) {
            s.first_response_at = Some(sent_at);
        }
    }
    s.updated_at = now;
}

/// Moves the session's start back to `at` when that is earlier; an
/// assignment that was only assumed to begin at the start moves with it.
/// True when it moved.
fn move_created_at(row: &mut SessionRow, at: DateTime<Utc>) -> bool {
    if at >= row.session.created_at {
        return false;
    }
    if row.assignment_started_at == Some(row.session.created_at)
        && row.session.assigned_at.is_none()
    {
        row.assignment_started_at = Some(at);
    }
    row.session.created_at = at;
    true
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

/// Inserts planned messages (of any sessions) in one statement, skipping
/// those already stored; returns the provider ids that were new.
async fn insert_messages(
    tx: &mut Transaction<'_, Any>,
    account: &AccountRef,
    planned: &[PlannedMessage<'_>],
) -> StoreResult<Vec<String>> {
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    let mut binds = Vec::with_capacity(planned.len() * MESSAGE_FIELDS.len());
    for pm in planned {
        let m = pm.message;
        binds.extend([
            Bind::Text(pm.id.clone()),
            Bind::Text(pm.session_id.clone()),
            Bind::Text(account.name.clone()),
            Bind::Text(account.provider.clone()),
            Bind::Text(m.external_id.clone()),
            Bind::OptText(pm.customer_id.clone()),
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
    }
    let sql = format!(
        "INSERT INTO messages ({}) VALUES {} ON CONFLICT (account, external_id) DO NOTHING \
         RETURNING external_id",
        MESSAGE_FIELDS.join(", "),
        Placeholders::of(tx).tuples(planned.len(), MESSAGE_FIELDS.len(), 0)
    );
    bind_all(sqlx::query(&sql), &binds)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
        .collect()
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
    let style = Placeholders::of(tx);
    for chunk in events.chunks(500) {
        let mut binds = Vec::with_capacity(chunk.len() * 8);
        let mut values = Vec::with_capacity(chunk.len());
        for e in chunk {
            values.push(format!("({})", style.list(binds.len() + 1, 8)));
            binds.push(Bind::Text(e.event_type.as_str().to_string()));
            binds.push(Bind::Int(to_micros(now)));
            binds.push(Bind::Text(account.name.clone()));
            binds.push(Bind::Text(account.provider.clone()));
            binds.push(Bind::Text(e.session_id.clone()));
            binds.push(Bind::OptText(e.message_id.clone()));
            binds.push(Bind::Text(e.data.clone()));
            binds.push(Bind::OptText(e.changes.clone()));
        }
        let sql = format!(
            "INSERT INTO events (type, at, account, provider, session_id, message_id, data, \
             changes) \
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

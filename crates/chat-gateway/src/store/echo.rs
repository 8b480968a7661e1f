//! Recognising the provider's echo of a send made through the gateway.
//!
//! A provider such as Spark sends every message an agent sent back on its
//! live feed, with the provider's id (the send receipt's message id). The
//! echo can be stored before the dispatcher records that id, so ingest asks
//! here first: an outbound, non-customer message whose id is unknown is
//! matched to a gateway send in the same session that has no provider id
//! yet, is `pending` or `sent`, has the same kind and content, and is either
//! still pending or was accepted within [`ECHO_WINDOW`]. The oldest such send
//! takes the provider's id (and the echo's raw JSON); nothing is inserted and
//! no event is written. The dispatcher's later update finds the id already in
//! place (see `outbox::claim_external_id`).
//!
//! For outreach the echo arrives in a session the provider just created: if
//! the gateway holds a provisional session for the same customer whose
//! outreach message matches a message of that change, the provisional
//! session takes the provider's session id instead of a new one being made.

use chat_core::{Media, MessageKind, ProviderMessage, Role, SessionChange};
use chrono::{DateTime, Utc};
use sqlx::{Any, Row, Transaction};

use super::actions::PROVISIONAL_SESSION_PREFIX;
use super::rows::{session_from_row, to_micros, SessionRow, SESSION_COLUMNS};
use super::sql::Placeholders;
use super::{AccountRef, StoreResult};

/// How long after it was accepted a `sent` message may still claim an echo.
pub const ECHO_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// Whether `m` could be the echo of a gateway send at all.
pub(crate) fn may_be_echo(m: &ProviderMessage) -> bool {
    m.sender.role != Role::Customer && matches!(m.kind, MessageKind::Text | MessageKind::Image)
}

/// Whether stored content (`text`, `media` JSON) is what `m` carries.
fn same_content(
    kind: MessageKind,
    text: Option<&str>,
    media: Option<&str>,
    m: &ProviderMessage,
) -> bool {
    match kind {
        MessageKind::Text => text.is_some() && text == m.text.as_deref(),
        MessageKind::Image => {
            let url = media
                .and_then(|j| serde_json::from_str::<Media>(j).ok())
                .and_then(|media| media.url);
            url.is_some() && url == m.media.as_ref().and_then(|x| x.url.clone())
        }
        _ => false,
    }
}

/// Gateway sends in `session_id` still without a provider id that could own
/// an echo of `kind`: `(pk, text, media)`, oldest first.
async fn unclaimed_sends(
    tx: &mut Transaction<'_, Any>,
    session_id: &str,
    kind: MessageKind,
    now: DateTime<Utc>,
) -> StoreResult<Vec<(i64, Option<String>, Option<String>)>> {
    let rows = sqlx::query(
        "SELECT pk, text, media FROM messages WHERE session_id = $1 AND external_id IS NULL \
         AND direction = 'outbound' AND kind = $2 \
         AND (delivery_status = 'pending' OR (delivery_status = 'sent' AND sent_at >= $3)) \
         ORDER BY pk LIMIT 50",
    )
    .bind(session_id)
    .bind(kind.as_str())
    .bind(to_micros(now - ECHO_WINDOW))
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Which of `session_ids` hold a gateway send an echo could still claim:
/// one indexed query per ingest call, so ordinary synced traffic skips the
/// per-message matching.
pub(crate) async fn sessions_with_unclaimed_sends(
    tx: &mut Transaction<'_, Any>,
    session_ids: &[String],
    now: DateTime<Utc>,
) -> StoreResult<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for chunk in session_ids.chunks(500) {
        let style = Placeholders::of(tx);
        let sql = format!(
            "SELECT DISTINCT session_id FROM messages WHERE external_id IS NULL \
             AND session_id IN ({}) AND direction = 'outbound' \
             AND (delivery_status = 'pending' OR (delivery_status = 'sent' AND sent_at >= {}))",
            style.list(1, chunk.len()),
            style.nth(chunk.len() + 1)
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.as_str());
        }
        q = q.bind(to_micros(now - ECHO_WINDOW));
        for r in q.fetch_all(&mut **tx).await? {
            out.insert(r.try_get(0)?);
        }
    }
    Ok(out)
}

/// Whether the account has any provisional outreach session (one cheap
/// query before looking for one per unknown session).
pub(crate) async fn has_provisional_sessions(
    tx: &mut Transaction<'_, Any>,
    account: &str,
) -> StoreResult<bool> {
    let row = sqlx::query(
        "SELECT 1 FROM sessions WHERE account = $1 AND status = 'open' AND external_id LIKE $2 LIMIT 1",
    )
    .bind(account)
    .bind(format!("{PROVISIONAL_SESSION_PREFIX}%"))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

/// Matches `m` to a gateway send in `session_id`; `true` when one took the
/// provider's id (the caller then stores nothing and emits nothing).
pub(crate) async fn adopt_echo(
    tx: &mut Transaction<'_, Any>,
    account: &AccountRef,
    session_id: &str,
    m: &ProviderMessage,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    if !may_be_echo(m) {
        return Ok(false);
    }
    let candidates = unclaimed_sends(tx, session_id, m.kind, now).await?;
    if candidates.is_empty() {
        return Ok(false);
    }
    // Already stored (a re-delivery): the ordinary insert ignores it.
    let known = sqlx::query("SELECT 1 FROM messages WHERE account = $1 AND external_id = $2")
        .bind(&account.name)
        .bind(&m.external_id)
        .fetch_optional(&mut **tx)
        .await?;
    if known.is_some() {
        return Ok(false);
    }
    for (pk, text, media) in candidates {
        if !same_content(m.kind, text.as_deref(), media.as_deref(), m) {
            continue;
        }
        let done = sqlx::query(
            "UPDATE messages SET external_id = $1, raw = COALESCE(raw, $2) \
             WHERE pk = $3 AND external_id IS NULL",
        )
        .bind(&m.external_id)
        .bind(m.raw.to_string())
        .bind(pk)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// For a change about a session not stored yet: the gateway's provisional
/// outreach session it is the echo of, renamed to the provider's id, with
/// the provisional id it had.
pub(crate) async fn adopt_outreach_session(
    tx: &mut Transaction<'_, Any>,
    account: &AccountRef,
    change: &SessionChange,
    now: DateTime<Utc>,
) -> StoreResult<Option<(SessionRow, String)>> {
    let p = &change.session;
    let Some(customer) = p.customer.as_ref().and_then(|c| c.external_id.as_deref()) else {
        return Ok(None);
    };
    let echoes: Vec<&ProviderMessage> = change.messages.iter().filter(|m| may_be_echo(m)).collect();
    if echoes.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE account = $1 AND customer_external_id = $2 \
         AND status = 'open' AND external_id LIKE $3 ORDER BY pk"
    );
    let provisional = sqlx::query(&sql)
        .bind(&account.name)
        .bind(customer)
        .bind(format!("{PROVISIONAL_SESSION_PREFIX}%"))
        .fetch_all(&mut **tx)
        .await?;
    if provisional.is_empty() {
        return Ok(None);
    }
    let exists = sqlx::query("SELECT 1 FROM sessions WHERE account = $1 AND external_id = $2")
        .bind(&account.name)
        .bind(&p.external_id)
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_some() {
        return Ok(None);
    }
    for r in &provisional {
        let mut row = session_from_row(r, false)?;
        let mut matched = false;
        for echo in &echoes {
            let sends = unclaimed_sends(tx, &row.session.id, echo.kind, now).await?;
            if sends.iter().any(|(_, text, media)| {
                same_content(echo.kind, text.as_deref(), media.as_deref(), echo)
            }) {
                matched = true;
                break;
            }
        }
        if !matched {
            continue;
        }
        let done =
            sqlx::query("UPDATE sessions SET external_id = $1 WHERE pk = $2 AND external_id = $3")
                .bind(&p.external_id)
                .bind(row.pk)
                .bind(&row.session.external_id)
                .execute(&mut **tx)
                .await?;
        if done.rows_affected() == 1 {
            let provisional =
                std::mem::replace(&mut row.session.external_id, p.external_id.clone());
            return Ok(Some((row, provisional)));
        }
    }
    Ok(None)
}

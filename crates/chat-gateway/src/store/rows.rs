//! Reading stored rows back into the model, and the time and JSON encodings
//! both backends share.

use chat_core::{
    Card, Delivery, DeliveryStatus, Direction, Media, Message, MessageKind, Participant, Role,
    Sender, Session, SessionStatus, StartedBy,
};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::StoreError;

/// UTC instant to the stored form (epoch microseconds).
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Stored form back to a UTC instant.
pub fn from_micros(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::<Utc>::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {us} out of range")))
}

fn opt_time(us: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    us.map(from_micros).transpose()
}

fn json_col<T: DeserializeOwned>(text: Option<String>) -> Result<Option<T>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn raw_col(text: Option<String>, include: bool) -> Result<Option<serde_json::Value>, StoreError> {
    if include {
        json_col(text)
    } else {
        Ok(None)
    }
}

fn participant(id: Option<String>, name: Option<String>, avatar: Option<String>) -> Participant {
    Participant {
        external_id: id,
        name,
        avatar_url: avatar,
    }
}

fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{column} = {value:?}"))
}

pub(super) fn parse_status(s: &str) -> Result<SessionStatus, StoreError> {
    match s {
        "open" => Ok(SessionStatus::Open),
        "closed" => Ok(SessionStatus::Closed),
        other => Err(corrupt("status", other)),
    }
}

fn parse_started_by(s: &str) -> Result<StartedBy, StoreError> {
    match s {
        "customer" => Ok(StartedBy::Customer),
        "agent" => Ok(StartedBy::Agent),
        "system" => Ok(StartedBy::System),
        other => Err(corrupt("started_by", other)),
    }
}

pub(super) fn parse_role(s: &str) -> Result<Role, StoreError> {
    match s {
        "customer" => Ok(Role::Customer),
        "agent" => Ok(Role::Agent),
        "bot" => Ok(Role::Bot),
        "system" => Ok(Role::System),
        other => Err(corrupt("sender_role", other)),
    }
}

fn parse_kind(s: &str) -> Result<MessageKind, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| corrupt("kind", s))
}

fn parse_direction(s: &str) -> Result<Direction, StoreError> {
    match s {
        "inbound" => Ok(Direction::Inbound),
        "outbound" => Ok(Direction::Outbound),
        other => Err(corrupt("direction", other)),
    }
}

fn parse_delivery(s: &str) -> Result<DeliveryStatus, StoreError> {
    match s {
        "pending" => Ok(DeliveryStatus::Pending),
        "sent" => Ok(DeliveryStatus::Sent),
        "failed" => Ok(DeliveryStatus::Failed),
        other => Err(corrupt("delivery_status", other)),
    }
}

/// The columns every session query selects, in [`session_from_row`]'s terms.
pub const SESSION_COLUMNS: &str = "pk, id, account, provider, external_id, status, channel, \
    customer_external_id, customer_name, customer_avatar_url, agent_external_id, agent_name, \
    agent_avatar_url, started_by, rating, created_at, assigned_at, closed_at, \
    assignment_started_at, first_response_at, last_message_at, updated_at, message_count, \
    fingerprint, raw";

/// A session row as stored, with the bookkeeping the API does not show.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Insertion number (keyset tie-breaker).
    pub pk: i64,
    /// The public object.
    pub session: Session,
    /// When the current assignment began (first-response timing).
    pub assignment_started_at: Option<DateTime<Utc>>,
    /// Provider summary digest.
    pub fingerprint: Option<String>,
    /// Raw JSON text as stored.
    pub raw_text: Option<String>,
}

/// Reads a row selected with [`SESSION_COLUMNS`].
pub fn session_from_row(row: &AnyRow, include_raw: bool) -> Result<SessionRow, StoreError> {
    let agent_id: Option<String> = row.try_get("agent_external_id")?;
    let agent_name: Option<String> = row.try_get("agent_name")?;
    let agent_avatar: Option<String> = row.try_get("agent_avatar_url")?;
    let agent = participant(agent_id, agent_name, agent_avatar);
    let raw_text: Option<String> = row.try_get("raw")?;
    let started_by: Option<String> = row.try_get("started_by")?;
    let status: String = row.try_get("status")?;
    let session = Session {
        id: row.try_get("id")?,
        provider: row.try_get("provider")?,
        account: row.try_get("account")?,
        external_id: row.try_get("external_id")?,
        status: parse_status(&status)?,
        channel: row.try_get("channel")?,
        customer: participant(
            row.try_get("customer_external_id")?,
            row.try_get("customer_name")?,
            row.try_get("customer_avatar_url")?,
        ),
        agent: (!agent.is_empty()).then_some(agent),
        started_by: started_by.as_deref().map(parse_started_by).transpose()?,
        rating: row.try_get("rating")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        assigned_at: opt_time(row.try_get("assigned_at")?)?,
        closed_at: opt_time(row.try_get("closed_at")?)?,
        first_response_at: opt_time(row.try_get("first_response_at")?)?,
        last_message_at: opt_time(row.try_get("last_message_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
        message_count: row.try_get("message_count")?,
        raw: raw_col(raw_text.clone(), include_raw)?,
    };
    Ok(SessionRow {
        pk: row.try_get("pk")?,
        session,
        assignment_started_at: opt_time(row.try_get("assignment_started_at")?)?,
        fingerprint: row.try_get("fingerprint")?,
        raw_text,
    })
}

/// The columns every message query selects, in [`message_from_row`]'s terms.
pub const MESSAGE_COLUMNS: &str = "pk, id, session_id, account, provider, external_id, \
    direction, sender_role, sender_external_id, sender_name, sender_avatar_url, kind, text, \
    media, card, event, sent_at, received_at, delivery_status, delivery_attempts, \
    delivery_last_error, raw";

/// Reads a row selected with [`MESSAGE_COLUMNS`]; returns it with its pk.
pub fn message_from_row(row: &AnyRow, include_raw: bool) -> Result<(i64, Message), StoreError> {
    let direction: String = row.try_get("direction")?;
    let role: String = row.try_get("sender_role")?;
    let kind: String = row.try_get("kind")?;
    let delivery_status: Option<String> = row.try_get("delivery_status")?;
    let delivery = match delivery_status {
        Some(s) => Some(Delivery {
            status: parse_delivery(&s)?,
            attempts: row
                .try_get::<Option<i64>, _>("delivery_attempts")?
                .unwrap_or(0),
            last_error: row.try_get("delivery_last_error")?,
        }),
        None => None,
    };
    let message = Message {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        provider: row.try_get("provider")?,
        account: row.try_get("account")?,
        external_id: row.try_get("external_id")?,
        direction: parse_direction(&direction)?,
        sender: Sender {
            role: parse_role(&role)?,
            external_id: row.try_get("sender_external_id")?,
            name: row.try_get("sender_name")?,
            avatar_url: row.try_get("sender_avatar_url")?,
        },
        kind: parse_kind(&kind)?,
        text: row.try_get("text")?,
        media: json_col::<Media>(row.try_get("media")?)?,
        card: json_col::<Card>(row.try_get("card")?)?,
        event: row.try_get("event")?,
        sent_at: from_micros(row.try_get("sent_at")?)?,
        received_at: opt_time(row.try_get("received_at")?)?,
        delivery,
        raw: raw_col(row.try_get("raw")?, include_raw)?,
    };
    Ok((row.try_get("pk")?, message))
}

/// The lower-cased text `q` searches, written beside `text` at insert so both
/// backends can answer case-insensitive substring queries (SQLite's `LIKE`
/// folds only ASCII) from an index.
pub fn search_text(text: Option<&str>) -> Option<String> {
    text.map(str::to_lowercase)
}

/// Escapes `%`, `_` and `\` so a user's `q` is matched literally.
pub fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for ch in q.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards_and_folds_case() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("你好"), "%你好%");
    }
}

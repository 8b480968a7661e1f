//! The `read` scenario's baseline: a bare axum handler serving
//! `GET /v1/sessions/{id}/messages?limit=N` with the gateway's own two
//! queries (copied from `chat-gateway`'s store: the session check, then the
//! keyset page) through sqlx's native driver, and the same JSON body
//! (`chat_core::Message` items and the same opaque cursor). No auth, no
//! middleware, no metrics: what the database and the HTTP stack cost alone.
//!
//! It runs as its own process (`chat-bench serve-read-baseline`), like the
//! gateway, so both are measured from the same load generator on the same
//! terms.

use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chat_core::{
    Card, Delivery, DeliveryStatus, Direction, Media, Message, MessageKind, Role, Sender,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::{on_pool, Pool};

/// `chat-gateway`'s session check (`get_session`).
pub const SESSION_SQL: &str = "SELECT pk, id, account, provider, external_id, status, channel, \
    customer_external_id, customer_name, customer_avatar_url, agent_external_id, agent_name, \
    agent_avatar_url, started_by, rating, created_at, assigned_at, closed_at, \
    assignment_started_at, first_response_at, last_message_at, updated_at, message_count, \
    fingerprint, raw FROM sessions WHERE id = $1";

/// `chat-gateway`'s message page (`list_messages` with a session filter,
/// ascending, first page).
pub const MESSAGES_SQL: &str = "SELECT pk, id, session_id, account, provider, external_id, \
    direction, sender_role, sender_external_id, sender_name, sender_avatar_url, kind, text, \
    media, card, event, sent_at, received_at, delivery_status, delivery_attempts, \
    delivery_last_error, raw FROM messages WHERE 1 = 1 AND session_id = $1 \
    ORDER BY sent_at ASC, pk ASC LIMIT $2";

/// A row of [`MESSAGES_SQL`].
#[derive(Debug, sqlx::FromRow)]
struct Row {
    pk: i64,
    id: String,
    session_id: String,
    account: String,
    provider: String,
    external_id: Option<String>,
    direction: String,
    sender_role: String,
    sender_external_id: Option<String>,
    sender_name: Option<String>,
    sender_avatar_url: Option<String>,
    kind: String,
    text: Option<String>,
    media: Option<String>,
    card: Option<String>,
    event: Option<String>,
    sent_at: i64,
    received_at: Option<i64>,
    delivery_status: Option<String>,
    delivery_attempts: Option<i64>,
    delivery_last_error: Option<String>,
    #[allow(dead_code)]
    raw: Option<String>,
}

type Fail = (StatusCode, String);

fn bad(what: &str, v: &str) -> Fail {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("stored {what} {v:?}"),
    )
}

fn time(us: i64) -> Result<DateTime<Utc>, Fail> {
    DateTime::<Utc>::from_timestamp_micros(us).ok_or_else(|| bad("time", &us.to_string()))
}

fn json_col<T: serde::de::DeserializeOwned>(v: Option<String>) -> Result<Option<T>, Fail> {
    v.map(|t| serde_json::from_str(&t).map_err(|_| bad("json", &t)))
        .transpose()
}

impl Row {
    fn into_message(self) -> Result<(i64, Message), Fail> {
        let direction = match self.direction.as_str() {
            "inbound" => Direction::Inbound,
            "outbound" => Direction::Outbound,
            other => return Err(bad("direction", other)),
        };
        let role = match self.sender_role.as_str() {
            "customer" => Role::Customer,
            "agent" => Role::Agent,
            "bot" => Role::Bot,
            "system" => Role::System,
            other => return Err(bad("sender_role", other)),
        };
        let kind = match self.kind.as_str() {
            "text" => MessageKind::Text,
            "image" => MessageKind::Image,
            "audio" => MessageKind::Audio,
            "video" => MessageKind::Video,
            "file" => MessageKind::File,
            "card" => MessageKind::Card,
            "location" => MessageKind::Location,
            "event" => MessageKind::Event,
            other => return Err(bad("kind", other)),
        };
        let delivery = match self.delivery_status.as_deref() {
            None => None,
            Some(s) => Some(Delivery {
                status: match s {
                    "pending" => DeliveryStatus::Pending,
                    "sent" => DeliveryStatus::Sent,
                    "failed" => DeliveryStatus::Failed,
                    other => return Err(bad("delivery_status", other)),
                },
                attempts: self.delivery_attempts.unwrap_or(0),
                last_error: self.delivery_last_error,
            }),
        };
        let message = Message {
            id: self.id,
            session_id: self.session_id,
            provider: self.provider,
            account: self.account,
            external_id: self.external_id,
            direction,
            sender: Sender {
                role,
                external_id: self.sender_external_id,
                name: self.sender_name,
                avatar_url: self.sender_avatar_url,
            },
            kind,
            text: self.text,
            media: json_col::<Media>(self.media)?,
            card: json_col::<Card>(self.card)?,
            event: self.event,
            sent_at: time(self.sent_at)?,
            received_at: self.received_at.map(time).transpose()?,
            delivery,
            raw: None,
        };
        Ok((self.pk, message))
    }
}

#[derive(Debug, Deserialize)]
struct Params {
    limit: Option<u32>,
}

#[derive(Serialize)]
struct Page {
    data: Vec<Message>,
    next_cursor: Option<String>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn list(
    State(pool): State<Arc<Pool>>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let limit = p.limit.unwrap_or(50).clamp(1, 500);
    let result: Result<Option<Vec<Row>>, sqlx::Error> = async {
        let found = on_pool!(pool.as_ref(), p => sqlx::query(SESSION_SQL)
            .bind(&id)
            .fetch_optional(p)
            .await?
            .is_some());
        if !found {
            return Ok(None);
        }
        let rows = on_pool!(pool.as_ref(), p => sqlx::query_as::<_, Row>(MESSAGES_SQL)
            .bind(&id)
            .bind(i64::from(limit) + 1)
            .fetch_all(p)
            .await?);
        Ok(Some(rows))
    }
    .await;
    let rows = match result {
        Ok(Some(rows)) => rows,
        Ok(None) => return error(StatusCode::NOT_FOUND, "not_found", "No such session."),
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &e.to_string(),
            )
        }
    };
    let more = rows.len() > limit as usize;
    let mut data = Vec::with_capacity(limit as usize);
    let mut last = None;
    for row in rows.into_iter().take(limit as usize) {
        match row.into_message() {
            Ok((pk, m)) => {
                last = Some((m.sent_at.timestamp_micros(), pk));
                data.push(m);
            }
            Err((status, why)) => return error(status, "corrupt", &why),
        }
    }
    let next_cursor = match last {
        Some((at, pk)) if more => Some(URL_SAFE_NO_PAD.encode(format!("v1|a|{at}|{pk}"))),
        _ => None,
    };
    Json(Page { data, next_cursor }).into_response()
}

/// Serves the baseline until killed.
pub async fn serve(database_url: &str, listen: &str, max_connections: u32) -> anyhow::Result<()> {
    let pool = Arc::new(Pool::connect(database_url, max_connections).await?);
    let app = Router::new()
        .route("/v1/sessions/{id}/messages", get(list))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

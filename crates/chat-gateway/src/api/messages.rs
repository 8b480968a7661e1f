//! `/v1/messages`: search across sessions and read one message.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use chat_core::{Direction, MessageKind};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{
    parse_enum, parse_include, parse_limit, parse_order, parse_time, ApiPath, ApiQuery,
};
use super::sessions::{not_found, parse_provider, ShowParams};
use super::AppState;
use crate::store::{AccountScope, MessageFilter, Order, PageRequest};

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/messages", get(list))
        .route("/v1/messages/{id}", get(show))
}

/// Message list parameters (API.md "Message filters"), shared with
/// `/v1/sessions/{id}/messages`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageParams {
    account: Option<String>,
    provider: Option<String>,
    session_id: Option<String>,
    customer_id: Option<String>,
    kind: Option<String>,
    direction: Option<String>,
    external_id: Option<String>,
    sent_after: Option<String>,
    sent_before: Option<String>,
    q: Option<String>,
    order: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    include: Option<String>,
}

/// Validates message parameters into a filter and a page request.
pub fn message_filter(
    scope: AccountScope,
    p: MessageParams,
) -> Result<(MessageFilter, PageRequest), ApiError> {
    let filter = MessageFilter {
        scope,
        account: p.account,
        provider: parse_provider(p.provider)?,
        session_id: p.session_id,
        customer_id: p.customer_id,
        kind: parse_enum::<MessageKind>(
            "kind",
            p.kind.as_deref(),
            "text, image, audio, video, file, card, location, event",
        )?,
        direction: parse_enum::<Direction>(
            "direction",
            p.direction.as_deref(),
            "inbound, outbound",
        )?,
        external_id: p.external_id,
        sent_after: parse_time("sent_after", p.sent_after.as_deref())?,
        sent_before: parse_time("sent_before", p.sent_before.as_deref())?,
        q: match p.q {
            Some(q) if q.is_empty() => {
                return Err(ApiError::invalid_request("`q` must not be empty."))
            }
            Some(q) if q.chars().count() > 200 => {
                return Err(ApiError::invalid_request(
                    "`q` is limited to 200 characters.",
                ))
            }
            other => other,
        },
        include_raw: parse_include(p.include.as_deref())?,
    };
    let page = PageRequest {
        limit: parse_limit(p.limit.as_deref(), 50, 500)?,
        cursor: p.cursor,
        order: parse_order(p.order.as_deref(), Order::Asc)?,
    };
    Ok((filter, page))
}

async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<MessageParams>,
) -> Result<Json<Value>, ApiError> {
    let (filter, page) = message_filter(caller.scope, p)?;
    let result = state.store.list_messages(&filter, &page).await?;
    Ok(Json(json!(result)))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<ShowParams>,
) -> Result<Json<Value>, ApiError> {
    let include_raw = parse_include(p.include.as_deref())?;
    let mut message = state
        .store
        .get_message(&id, &caller.scope)
        .await
        .map_err(not_found("message"))?;
    if !include_raw {
        message.raw = None;
    }
    Ok(Json(json!({ "data": message })))
}

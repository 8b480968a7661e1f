//! `/v1/sessions`: list, read, and (with the actions issue) act on sessions.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use chat_core::SessionStatus;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{
    parse_enum, parse_include, parse_limit, parse_order, parse_time, ApiPath, ApiQuery,
};
use super::messages::{message_filter, MessageParams};
use super::AppState;
use crate::providers::provider_names;
use crate::store::{Order, PageRequest, SessionFilter, StoreError};

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sessions", get(list))
        .route("/v1/sessions/{id}", get(show))
        .route("/v1/sessions/{id}/messages", get(list_messages))
}

/// `GET /v1/sessions` parameters (API.md "Session filters").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    account: Option<String>,
    provider: Option<String>,
    status: Option<String>,
    customer_id: Option<String>,
    agent_id: Option<String>,
    channel: Option<String>,
    external_id: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    updated_after: Option<String>,
    order: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    include: Option<String>,
}

/// Checks a `provider` filter names a provider this build knows.
pub fn parse_provider(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(p) if !provider_names().contains(&p.as_str()) => Err(ApiError::invalid_request(
            format!("`provider` must be one of {}.", provider_names().join(", ")),
        )),
        other => Ok(other),
    }
}

/// `GET /v1/sessions/{id}` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowParams {
    /// `raw` adds the provider's original JSON.
    pub include: Option<String>,
}

async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let filter = SessionFilter {
        scope: caller.scope,
        account: p.account,
        provider: parse_provider(p.provider)?,
        status: parse_enum::<SessionStatus>("status", p.status.as_deref(), "open, closed")?,
        customer_id: p.customer_id,
        agent_id: p.agent_id,
        channel: p.channel.map(|c| c.to_lowercase()),
        external_id: p.external_id,
        created_after: parse_time("created_after", p.created_after.as_deref())?,
        created_before: parse_time("created_before", p.created_before.as_deref())?,
        updated_after: parse_time("updated_after", p.updated_after.as_deref())?,
        include_raw: parse_include(p.include.as_deref())?,
    };
    let page = PageRequest {
        limit: parse_limit(p.limit.as_deref(), 50, 500)?,
        cursor: p.cursor,
        order: parse_order(p.order.as_deref(), Order::Desc)?,
    };
    let result = state.store.list_sessions(&filter, &page).await?;
    Ok(Json(json!(result)))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<ShowParams>,
) -> Result<Json<Value>, ApiError> {
    let include_raw = parse_include(p.include.as_deref())?;
    let mut session = state
        .store
        .get_session(&id, &caller.scope)
        .await
        .map_err(not_found("session"))?;
    if !include_raw {
        session.raw = None;
    }
    Ok(Json(json!({ "data": session })))
}

async fn list_messages(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<MessageParams>,
) -> Result<Json<Value>, ApiError> {
    // The session must exist and be visible: a typo'd id is a 404, not [].
    state
        .store
        .get_session(&id, &caller.scope)
        .await
        .map_err(not_found("session"))?;
    let (mut filter, page) = message_filter(caller.scope, p)?;
    if filter.session_id.as_ref().is_some_and(|s| s != &id) {
        return Err(ApiError::invalid_request(
            "`session_id` is given by the path here; leave it out of the query.",
        ));
    }
    filter.session_id = Some(id);
    let result = state.store.list_messages(&filter, &page).await?;
    Ok(Json(json!(result)))
}

/// Maps a store "not found" to a 404 naming `what`.
pub fn not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

//! `/v1/customers`: who the gateway's sessions name, per account, and the
//! erasure of a customer's data on request (privacy law: GDPR, PIPL).
//!
//! Reads need `read`; `DELETE` needs `admin`, checked by the auth layer
//! before the path is even looked at, so a key without it learns nothing
//! about who exists. A customer of an account the key may not see is 404.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use chat_core::time::to_rfc3339;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{parse_limit, ApiPath, ApiQuery};
use super::sessions::{not_found, parse_provider};
use super::AppState;
use crate::store::customers::{Customer, CustomerFilter};
use crate::store::AccountRef;

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/v1/customers", get(list)).route(
        "/v1/customers/{account}/{external_id}",
        get(show).delete(erase),
    )
}

/// `GET /v1/customers` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    account: Option<String>,
    provider: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Parameters of the single-customer routes: none.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

fn customer_json(c: &Customer) -> Value {
    json!({
        "account": c.account,
        "provider": c.provider,
        "external_id": c.external_id,
        "name": c.name,
        "avatar_url": c.avatar_url,
        "session_count": c.session_count,
        "message_count": c.message_count,
        "first_seen_at": to_rfc3339(c.first_seen_at),
        "last_seen_at": to_rfc3339(c.last_seen_at),
    })
}

async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = parse_limit(p.limit.as_deref(), 50, 500)?;
    let q = p.q.filter(|q| !q.is_empty());
    if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::invalid_request(
            "`q` is longer than 200 characters.",
        ));
    }
    let filter = CustomerFilter {
        account: p.account,
        provider: parse_provider(p.provider)?,
        q,
        scope: caller.scope,
    };
    let page = state
        .store
        .list_customers(&filter, limit, p.cursor.as_deref())
        .await?;
    let data: Vec<Value> = page.data.iter().map(customer_json).collect();
    Ok(Json(
        json!({ "data": data, "next_cursor": page.next_cursor }),
    ))
}

/// The customer if the caller may see their account, else 404.
async fn visible(
    state: &AppState,
    caller: &Caller,
    account: &str,
    external_id: &str,
) -> Result<Customer, ApiError> {
    if !caller.scope.allows(account) {
        return Err(ApiError::not_found("customer"));
    }
    state
        .store
        .get_customer(account, external_id)
        .await
        .map_err(not_found("customer"))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((account, external_id)): ApiPath<(String, String)>,
    ApiQuery(_): ApiQuery<NoParams>,
) -> Result<Json<Value>, ApiError> {
    let c = visible(&state, &caller, &account, &external_id).await?;
    Ok(Json(json!({ "data": customer_json(&c) })))
}

async fn erase(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((account, external_id)): ApiPath<(String, String)>,
    ApiQuery(_): ApiQuery<NoParams>,
) -> Result<Json<Value>, ApiError> {
    let c = visible(&state, &caller, &account, &external_id).await?;
    let account_ref = AccountRef {
        name: c.account.clone(),
        provider: c.provider.clone(),
    };
    let erased = state
        .store
        .erase_customer(&account_ref, &external_id)
        .await
        .map_err(not_found("customer"))?;
    // This replica's in-memory feed forgets them at once.
    state.feed.forget_sessions(&erased.session_ids);
    tracing::info!(
        account = %account,
        sessions = erased.sessions,
        messages = erased.messages,
        "customer erased"
    );
    Ok(Json(json!({
        "data": {"sessions": erased.sessions, "messages": erased.messages}
    })))
}

//! `/v1/accounts`: the configured provider accounts and their sync state.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::providers::Account;

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/accounts", get(list))
        .route("/v1/accounts/{name}", get(show))
}

/// The account as the API shows it.
pub async fn account_json(state: &AppState, account: &Account) -> Result<Value, ApiError> {
    let sync = state.store.sync_state(&account.reference()).await?;
    let mut sync_json = serde_json::to_value(&sync.status).map_err(|_| ApiError::internal())?;
    sync_json["cursor"] = json!(sync.cursor);
    Ok(json!({
        "name": account.config.name,
        "provider": account.config.provider,
        "capabilities": account.provider.capabilities(),
        "sync": sync_json,
    }))
}

async fn list(State(state): State<Arc<AppState>>, Extension(caller): Extension<Caller>) -> Result<Json<Value>, ApiError> {
    let mut data = Vec::new();
    for account in state.accounts.iter().filter(|a| caller.scope.allows(&a.config.name)) {
        data.push(account_json(&state, account).await?);
    }
    Ok(Json(json!({ "data": data })))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account = state
        .accounts
        .get(&name)
        .filter(|a| caller.scope.allows(&a.config.name))
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(Json(json!({ "data": account_json(&state, account).await? })))
}

//! `/v1/accounts`: the configured provider accounts and their sync state.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{parse_time, ApiJson, ApiPath};
use crate::store::Backfill;
use crate::sync::backfill::{self, BackfillKind};
use crate::sync::SyncContext;

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::providers::Account;

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/accounts", get(list))
        .route("/v1/accounts/{name}", get(show))
        .route("/v1/accounts/{name}/sync", post(start_backfill))
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

async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let mut data = Vec::new();
    for account in state
        .accounts
        .iter()
        .filter(|a| caller.scope.allows(&a.config.name))
    {
        data.push(account_json(&state, account).await?);
    }
    Ok(Json(json!({ "data": data })))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let account = state
        .accounts
        .get(&name)
        .filter(|a| caller.scope.allows(&a.config.name))
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(Json(
        json!({ "data": account_json(&state, account).await? }),
    ))
}

/// `POST /v1/accounts/{name}/sync` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    from: Option<String>,
    to: Option<String>,
    customer_ids: Option<Vec<String>>,
}

async fn start_backfill(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<BackfillRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let account = state
        .accounts
        .get(&name)
        .filter(|a| caller.scope.allows(&a.config.name))
        .ok_or_else(|| ApiError::not_found("account"))?
        .clone();
    let from = parse_time("from", body.from.as_deref())?
        .ok_or_else(|| ApiError::invalid_request("`from` is required (RFC 3339)."))?;
    let to = parse_time("to", body.to.as_deref())?.unwrap_or_else(Utc::now);
    if from >= to {
        return Err(ApiError::invalid_request("`from` must be before `to`."));
    }
    let kind = backfill::support(&account).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_operation",
            format!(
                "Provider {} cannot backfill a time range; its live feed replays recent history by itself.",
                account.config.provider
            ),
        )
    })?;
    if let Some(ids) = &body.customer_ids {
        if kind != BackfillKind::Customers {
            return Err(ApiError::invalid_request(format!(
                "`customer_ids` applies only to providers that sync per customer (ccmessaging), not {}.",
                account.config.provider
            )));
        }
        if ids.iter().any(|c| c.is_empty() || c.chars().count() > 24) {
            return Err(ApiError::invalid_request(
                "Each customer id must be 1 to 24 characters.",
            ));
        }
    }
    {
        let mut running = state.backfills.lock().unwrap_or_else(|p| p.into_inner());
        if !running.insert(name.clone()) {
            return Err(ApiError::invalid_state(
                "A backfill of this account is already running.",
            ));
        }
    }
    let progress = Backfill {
        state: "running".into(),
        from,
        to,
        fetched: 0,
        error: None,
    };
    let started = async {
        if let Some(ids) = &body.customer_ids {
            state.store.add_customers(&account.reference(), ids).await?;
        }
        state.store.put_backfill(&name, Some(&progress)).await
    }
    .await;
    if let Err(e) = started {
        state
            .backfills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        return Err(e.into());
    }
    let ctx = SyncContext {
        store: state.store.clone(),
        metrics: state.metrics.clone(),
        owner: String::new(),
    };
    let task_state = state.clone();
    let cancel = state.shutdown.child_token();
    let task_name = name.clone();
    tokio::spawn(async move {
        backfill::run(ctx, account, from, to, body.customer_ids, cancel).await;
        task_state
            .backfills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task_name);
    });
    let account = state
        .accounts
        .get(&name)
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "data": account_json(&state, account).await? })),
    ))
}

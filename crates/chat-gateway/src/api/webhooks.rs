//! `/v1/webhooks`: register, list, read, change and remove webhook
//! endpoints; rotate their secrets; list their delivery attempts and send
//! events again (recover, retry). Admin scope (see [`super::auth::Scope`]).
//!
//! The signing secret is generated here, answered once in the 201 (or the
//! rotation's 200) and never again (reads leave it out; logs never see it).
//! `DELETE` answers 204.
//! A key limited to some accounts registers webhooks for those accounts
//! only (by name: `*` would carry other accounts' events) and sees only such
//! webhooks; the others are 404 to it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chat_core::time::to_rfc3339;
use chat_core::EventType;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{parse_limit, ApiJson, ApiQuery};
use super::AppState;
use crate::store::webhooks::{NewWebhook, Webhook, WebhookDelivery, WebhookPatch, ALL};
use crate::store::{AccountScope, Order, PageRequest, StoreError};
use crate::webhooks::signature::WebhookSecret;
use crate::webhooks::target;

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/webhooks", get(list).post(create))
        .route("/v1/webhooks/{id}", get(show).delete(remove).patch(update))
        .route("/v1/webhooks/{id}/deliveries", get(deliveries))
        .route("/v1/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/v1/webhooks/{id}/recover", post(recover))
        .route(
            "/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
            post(retry_delivery),
        )
}

/// Longest overlap a rotation may ask for (7 days).
pub const MAX_OVERLAP_SECS: u64 = 604_800;
/// Overlap when the rotation names none (1 day).
pub const DEFAULT_OVERLAP_SECS: u64 = 86_400;

/// Reads a field that may be absent but never `null`: absent is `None`,
/// `null` is `Some(None)` (then refused), a value `Some(Some(v))`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /v1/webhooks/{id}` body: any of the fields, none of them `null`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default, deserialize_with = "present")]
    url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    events: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    accounts: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    enabled: Option<Option<bool>>,
}

/// `POST /v1/webhooks/{id}/rotate-secret` body (optional as a whole).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    #[serde(default, deserialize_with = "given")]
    overlap_secs: Option<u64>,
}

/// `POST /v1/webhooks/{id}/recover` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    since: String,
}

/// Refuses an explicit `null`, which would otherwise mean "leave as is".
fn not_null<T>(field: &str, value: Option<Option<T>>) -> Result<Option<T>, ApiError> {
    match value {
        Some(None) => Err(ApiError::invalid_request(format!(
            "`{field}` may not be null: leave it out to keep it as it is."
        ))),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

/// `POST /v1/webhooks` body. `events` and `accounts` default to `["*"]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    url: String,
    #[serde(default, deserialize_with = "given")]
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "given")]
    accounts: Option<Vec<String>>,
}

/// An optional field that, when given, must hold a value: absent means
/// the default, but `null` is refused (400) like any other wrong type, as
/// the OpenAPI schema says.
fn given<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `limit` and `cursor` of the lists here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    limit: Option<String>,
    cursor: Option<String>,
}

impl PageParams {
    fn page(self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest {
            limit: parse_limit(self.limit.as_deref(), 50, 500)?,
            cursor: self.cursor,
            order: Order::Desc,
        })
    }
}

fn webhook_json(w: &Webhook) -> Value {
    json!({
        "id": w.id,
        "url": w.url,
        "events": w.events,
        "accounts": w.accounts,
        "enabled": w.enabled(),
        "disabled_reason": w.disabled_reason,
        "created_at": to_rfc3339(w.created_at),
        "updated_at": to_rfc3339(w.updated_at),
    })
}

fn delivery_json(d: &WebhookDelivery) -> Value {
    json!({
        "id": d.id,
        "event_seq": d.event_seq.to_string(),
        "attempt": d.attempt,
        "status": d.status,
        "response_status": d.response_status,
        "error": d.error,
        "at": to_rfc3339(d.at),
        "next_attempt_at": d.next_attempt_at.map(to_rfc3339),
    })
}

/// `["*"]` when the list holds `*`, else the list without repeats.
fn normalise(list: Vec<String>) -> Vec<String> {
    if list.iter().any(|v| v == ALL) {
        return vec![ALL.to_string()];
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for v in list {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn parse_events(raw: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let list = raw.unwrap_or_else(|| vec![ALL.to_string()]);
    if list.is_empty() {
        return Err(ApiError::invalid_request(
            "`events` needs at least one event type, or \"*\" for all.",
        ));
    }
    for e in &list {
        if e != ALL && EventType::parse(e).is_none() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(ApiError::invalid_request(format!(
                "`events` has an unknown event type `{e}`; use \"*\" or some of {}.",
                known.join(", ")
            )));
        }
    }
    Ok(normalise(list))
}

/// Parses a target URL and checks where it points, at registration or on
/// a change of `url`.
async fn checked_url(state: &AppState, raw: &str) -> Result<String, ApiError> {
    let url =
        target::parse_url(raw.trim()).map_err(|e| ApiError::invalid_request(format!("{e}.")))?;
    let allow_private = state.config.webhooks.allow_private_targets;
    // A name that does not resolve yet is accepted: every delivery checks again.
    target::check(&url, allow_private, false)
        .await
        .map_err(|e| ApiError::invalid_request(format!("{e}.")))?;
    Ok(url.to_string())
}

fn parse_accounts(
    state: &AppState,
    scope: &AccountScope,
    raw: Option<Vec<String>>,
) -> Result<Vec<String>, ApiError> {
    let list = normalise(raw.unwrap_or_else(|| vec![ALL.to_string()]));
    if list.is_empty() {
        return Err(ApiError::invalid_request(
            "`accounts` needs at least one account name, or \"*\" for all.",
        ));
    }
    if list == [ALL] {
        return match scope {
            AccountScope::All => Ok(list),
            AccountScope::Only(_) => Err(ApiError::invalid_request(
                "This API key sees only some accounts: name them in `accounts` instead of \"*\".",
            )),
        };
    }
    for name in &list {
        if state.accounts.get(name).is_none() || !scope.allows(name) {
            return Err(ApiError::invalid_request(format!(
                "`accounts` names an unknown account `{name}`."
            )));
        }
    }
    Ok(list)
}

async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<Response, ApiError> {
    let events = parse_events(body.events)?;
    let accounts = parse_accounts(&state, &caller.scope, body.accounts)?;
    let url = checked_url(&state, &body.url).await?;
    let secret = WebhookSecret::generate();
    let webhook = state
        .store
        .create_webhook(&NewWebhook {
            url,
            events,
            accounts,
            secret: secret.clone(),
        })
        .await?;
    crate::webhooks::announce_change();
    tracing::info!(webhook = %webhook.id, "webhook registered");
    let mut data = webhook_json(&webhook);
    if let Some(obj) = data.as_object_mut() {
        obj.insert("secret".into(), Value::String(secret.expose().to_string()));
    }
    let mut resp = (StatusCode::CREATED, Json(json!({ "data": data }))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/webhooks/{}", webhook.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The webhook `id` if the caller may see it, else 404.
async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<Webhook, ApiError> {
    match state.store.get_webhook(id).await {
        Ok(w) if w.visible_to(&caller.scope) => Ok(w),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::not_found("webhook")),
        Err(e) => Err(e.into()),
    }
}

async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let page = state.store.list_webhooks(&caller.scope, &p.page()?).await?;
    let data: Vec<Value> = page.data.iter().map(webhook_json).collect();
    Ok(Json(
        json!({ "data": data, "next_cursor": page.next_cursor }),
    ))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let w = visible(&state, &caller, &id).await?;
    Ok(Json(json!({ "data": webhook_json(&w) })))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    visible(&state, &caller, &id).await?;
    match state.store.delete_webhook(&id).await {
        Ok(()) => {
            tracing::info!(webhook = %id, "webhook deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(StoreError::NotFound) => Err(ApiError::not_found("webhook")),
        Err(e) => Err(e.into()),
    }
}

async fn deliveries(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let page = p.page()?;
    visible(&state, &caller, &id).await?;
    let page = state.store.list_webhook_deliveries(&id, &page).await?;
    let data: Vec<Value> = page.data.iter().map(delivery_json).collect();
    Ok(Json(
        json!({ "data": data, "next_cursor": page.next_cursor }),
    ))
}

async fn update(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<Value>, ApiError> {
    let url = not_null("url", body.url)?;
    let events = not_null("events", body.events)?;
    let accounts = not_null("accounts", body.accounts)?;
    let enabled = not_null("enabled", body.enabled)?;
    let events = events.map(|e| parse_events(Some(e))).transpose()?;
    let accounts = accounts
        .map(|a| parse_accounts(&state, &caller.scope, Some(a)))
        .transpose()?;
    visible(&state, &caller, &id).await?;
    let url = match url {
        Some(u) => Some(checked_url(&state, &u).await?),
        None => None,
    };
    let patch = WebhookPatch {
        url,
        events,
        accounts,
        enabled,
    };
    let webhook = match state.store.update_webhook(&id, &patch).await {
        Ok(w) => w,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("webhook")),
        Err(e) => return Err(e.into()),
    };
    crate::webhooks::announce_change();
    tracing::info!(webhook = %id, enabled = webhook.enabled(), "webhook changed");
    Ok(Json(json!({ "data": webhook_json(&webhook) })))
}

/// Reads an optional JSON body: empty means every field's default.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("Bad JSON body: {e}")))
}

async fn rotate_secret(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: RotateSecret = optional_body(&body)?;
    let overlap = body.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(ApiError::invalid_request(format!(
            "`overlap_secs` must be from 0 to {MAX_OVERLAP_SECS}."
        )));
    }
    visible(&state, &caller, &id).await?;
    let secret = WebhookSecret::generate();
    let until = chrono::Utc::now().timestamp_micros() + (overlap as i64) * 1_000_000;
    let webhook = match state.store.rotate_webhook_secret(&id, &secret, until).await {
        Ok(w) => w,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("webhook")),
        Err(e) => return Err(e.into()),
    };
    crate::webhooks::announce_change();
    tracing::info!(webhook = %id, overlap_secs = overlap, "webhook secret rotated");
    let mut data = webhook_json(&webhook);
    if let Some(obj) = data.as_object_mut() {
        obj.insert("secret".into(), Value::String(secret.expose().to_string()));
    }
    Ok(Json(json!({ "data": data })))
}

async fn recover(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Recover>,
) -> Result<Response, ApiError> {
    let since = super::extract::parse_time("since", Some(&body.since))?
        .ok_or_else(|| ApiError::invalid_request("`since` is required."))?;
    visible(&state, &caller, &id).await?;
    let queued = match state
        .store
        .recover_webhook(&id, since.timestamp_micros())
        .await
    {
        Ok(n) => n,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("webhook")),
        Err(e) => return Err(e.into()),
    };
    crate::webhooks::announce_change();
    tracing::info!(webhook = %id, queued, "webhook events queued again");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "data": { "queued": queued } })),
    )
        .into_response())
}

async fn retry_delivery(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    visible(&state, &caller, &id).await?;
    let attempt = match state.store.retry_webhook_delivery(&id, &delivery_id).await {
        Ok(a) => a,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("delivery")),
        Err(e) => return Err(e.into()),
    };
    crate::webhooks::announce_change();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "data": delivery_json(&attempt) })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters_are_checked_and_normalised() {
        assert_eq!(parse_events(None).unwrap(), vec!["*"]);
        assert_eq!(
            parse_events(Some(vec!["message.created".into(), "*".into()])).unwrap(),
            vec!["*"]
        );
        assert_eq!(
            parse_events(Some(vec![
                "message.created".into(),
                "message.created".into()
            ]))
            .unwrap(),
            vec!["message.created"]
        );
        assert_eq!(
            parse_events(Some(vec!["message.deleted".into()]))
                .unwrap_err()
                .code,
            "invalid_request"
        );
        assert!(parse_events(Some(vec![])).is_err());
    }
}

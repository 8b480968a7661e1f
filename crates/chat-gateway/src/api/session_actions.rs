//! `POST /v1/sessions/{id}/close`, `/restart` and `/transfer`.
//!
//! After auth and the body (400): the session (404), the provider's
//! capability (422 `unsupported_operation`), the session's state (409
//! `invalid_state`), then one provider call bounded by the account's
//! `request_timeout_secs` and by what is left of the request's budget. Provider failures map as the error table says;
//! on success the session is updated with its event in one transaction and
//! the answer is 200 with the session.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use chat_core::{Capability, MessageKind, ProviderError, Role, Sender, SessionStatus};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::body::JsonBody;
use super::budget::Deadline;
use super::error::ApiError;
use super::extract::ApiPath;
use super::idempotency::{self, Begun};
use super::sends::{configured, payload_for, pending_message, unsupported};
use super::sessions::not_found;
use super::AppState;
use crate::providers::Account;
use crate::store::{NewSend, OutboxKind, SessionAction};

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sessions/{id}/close", post(close))
        .route("/v1/sessions/{id}/restart", post(restart))
        .route("/v1/sessions/{id}/transfer", post(transfer))
}

/// Body of close and restart: empty, or an object without fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// `POST /v1/sessions/{id}/transfer` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferIn {
    /// The new agent's provider id.
    pub agent_id: String,
    /// Also tell the customer, with a system message through the outbox.
    #[serde(default)]
    pub notify_customer: bool,
}

/// The text a customer gets when told of a hand-over.
pub fn transfer_notice(agent_id: &str) -> String {
    format!("您好，已为您转接客服 {agent_id}。")
}

/// A provider failure as the API answers it.
pub fn provider_failure(account: &Account, e: ProviderError) -> ApiError {
    let name = account.provider.name();
    match e {
        ProviderError::Rejected { message, .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider_rejected",
            format!("{name} refused the action: {message}"),
        ),
        ProviderError::NotFound(what) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider_rejected",
            format!("{name} refused the action: no such object ({what})"),
        ),
        ProviderError::RateLimited { retry_after } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("{name} is rate limiting this account; try again later."),
        )
        .with_retry_after(retry_after.map_or(1, |d| d.as_secs().max(1))),
        ProviderError::Timeout => provider_timeout(
            account,
            Duration::from_secs(account.config.request_timeout_secs),
        ),
        ProviderError::Unsupported(what) => unsupported(account, what),
        ProviderError::Unauthorized(_) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_error",
            format!(
                "{name} refused the gateway's credentials for account {}.",
                account.config.name
            ),
        ),
        other => {
            tracing::warn!(account = %account.config.name, error = %other, "provider call failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                format!("{name} failed: {other}"),
            )
        }
    }
}

/// 504: the provider did not answer within `budget`.
pub fn provider_timeout(account: &Account, budget: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "provider_timeout",
        format!(
            "{} did not answer within {:.1} s.",
            account.provider.name(),
            budget.as_secs_f64()
        ),
    )
}

/// One action, start to end.
#[derive(Debug, Clone)]
enum Act {
    Close,
    Restart,
    Transfer(TransferIn),
}

/// What an action reads of its request besides the body.
struct ActionRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    deadline: Deadline,
}

impl<S: Send + Sync> FromRequestParts<S> for ActionRequest {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ActionRequest {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            deadline: Deadline::of(&parts.extensions),
        })
    }
}

async fn run(
    state: Arc<AppState>,
    caller: Caller,
    id: String,
    request: ActionRequest,
    canonical: String,
    act: Act,
) -> Result<Response, ApiError> {
    let ActionRequest {
        method,
        uri,
        headers,
        deadline,
    } = request;
    if let Act::Transfer(t) = &act {
        if t.agent_id.trim().is_empty() {
            return Err(ApiError::invalid_request("`agent_id` must not be empty."));
        }
    }
    let reservation =
        match idempotency::begin(&state, &caller, &headers, &method, uri.path(), &canonical).await?
        {
            Begun::Replay(r) => return Ok(r),
            Begun::Proceed(r) => r,
        };
    let result = async {
        let session = state
            .store
            .get_session(&id, &caller.scope)
            .await
            .map_err(not_found("session"))?;
        let account = configured(&state, &session.account)?;
        let caps = account.provider.capabilities();
        let (capability, what) = match &act {
            Act::Close => (Capability::Close, "closing sessions"),
            Act::Restart => (Capability::Restart, "restarting sessions"),
            Act::Transfer(_) => (Capability::Transfer, "transferring sessions"),
        };
        if !caps.has(capability) {
            return Err(unsupported(account, what));
        }
        let mut notify_customer = None;
        if let Act::Transfer(t) = &act {
            if t.notify_customer {
                if !caps.has(Capability::Send) {
                    return Err(unsupported(account, "sending messages (notify_customer)"));
                }
                let customer = session.customer.external_id.clone().ok_or_else(|| {
                    ApiError::invalid_state(
                        "The session's customer is not known, so they cannot be notified.",
                    )
                })?;
                notify_customer = Some(customer);
            }
        }
        let state_problem = match (&act, session.status) {
            (Act::Close, SessionStatus::Closed) => Some("The session is already closed."),
            (Act::Restart, SessionStatus::Open) => {
                Some("The session is open; only a closed session can be restarted.")
            }
            (Act::Transfer(_), SessionStatus::Closed) => {
                Some("The session is closed; restart it before transferring.")
            }
            _ => None,
        };
        if let Some(problem) = state_problem {
            return Err(ApiError::invalid_state(problem));
        }
        // The provider gets what is left of the request (less a margin), at
        // most the account's limit, so it times out first: 504, not the
        // server's own 503.
        let budget = deadline.provider_budget(Duration::from_secs(
            account.config.request_timeout_secs.max(1),
        ));
        let provider = &account.provider;
        let ext = session.external_id.as_str();
        let call = async {
            match &act {
                Act::Close => provider.close(ext).await,
                Act::Restart => provider.restart(ext).await,
                Act::Transfer(t) => provider.transfer(ext, &t.agent_id).await,
            }
        };
        match tokio::time::timeout(budget, call).await {
            Err(_) => return Err(provider_timeout(account, budget)),
            Ok(Err(e)) => return Err(provider_failure(account, e)),
            Ok(Ok(())) => {}
        }
        let action = match &act {
            Act::Close => SessionAction::Close,
            Act::Restart => SessionAction::Restart,
            Act::Transfer(t) => SessionAction::Transfer {
                agent_id: t.agent_id.clone(),
            },
        };
        let notify = match (&act, notify_customer) {
            (Act::Transfer(t), Some(customer)) => {
                let message = pending_message(
                    &session,
                    Sender::role_only(Role::System),
                    MessageKind::Text,
                    Some(transfer_notice(&t.agent_id)),
                    None,
                );
                Some(NewSend {
                    payload: payload_for(&message, customer),
                    message,
                    kind: OutboxKind::Send,
                    new_session: None,
                    idempotency: None,
                })
            }
            _ => None,
        };
        let updated = state
            .store
            .apply_session_action(&session.id, &action, notify.as_ref())
            .await
            .map_err(not_found("session"))?;
        Ok(json!({ "data": updated }))
    }
    .await;
    let body = idempotency::release_on_error(&state, reservation.as_ref(), result).await?;
    if let Some(r) = &reservation {
        r.finish(&state, StatusCode::OK, &body).await;
    }
    Ok((StatusCode::OK, Json(body)).into_response())
}

async fn close(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    request: ActionRequest,
    body: JsonBody<NoOptions>,
) -> Result<Response, ApiError> {
    run(state, caller, id, request, body.canonical, Act::Close).await
}

async fn restart(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    request: ActionRequest,
    body: JsonBody<NoOptions>,
) -> Result<Response, ApiError> {
    run(state, caller, id, request, body.canonical, Act::Restart).await
}

async fn transfer(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    request: ActionRequest,
    body: JsonBody<TransferIn>,
) -> Result<Response, ApiError> {
    let JsonBody { value, canonical } = body;
    run(state, caller, id, request, canonical, Act::Transfer(value)).await
}

//! Sending: `POST /v1/sessions/{id}/messages` and outreach `POST /v1/messages`.
//!
//! Checks run in the contract's order after auth: body shape (400), the
//! session or account (404), the provider's capability (422
//! `unsupported_operation`), content kind (422 `unsupported_content`), text
//! length in Unicode scalar values (422 `content_too_long`), then state (409
//! `invalid_state`, or `confirmation_required` for outreach). The message,
//! its outbox row and `message.created` are stored in one transaction
//! (with the idempotent answer) and the answer is 202 with
//! `delivery.status = "pending"`; the outbox dispatcher delivers it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use chat_core::{
    Capability, Delivery, DeliveryStatus, Direction, Media, Message, MessageKind, Participant,
    Role, Sender, Session, SessionStatus, StartedBy,
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::body::JsonBody;
use super::error::ApiError;
use super::extract::ApiPath;
use super::idempotency::{self, Begun, Reservation};
use super::sessions::not_found;
use super::AppState;
use crate::ids::new_id;
use crate::providers::Account;
use crate::store::{
    EnqueueOutcome, NewSend, OutboxKind, OutboxPayload, PROVISIONAL_SESSION_PREFIX,
};

/// Routes of this resource (the GETs of the same paths live in `sessions`
/// and `messages`; axum merges methods per path).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sessions/{id}/messages", post(send))
        .route("/v1/messages", post(outreach))
}

/// A media attachment to send, by URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaIn {
    /// Where the provider (and the customer) fetch it: http or https.
    pub url: String,
    /// Optional MIME type, kept on the message.
    pub mime_type: Option<String>,
    /// Optional file name, kept on the message.
    pub file_name: Option<String>,
}

/// `POST /v1/sessions/{id}/messages` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendIn {
    /// `text` or `image` (others exist in the model but no provider sends them).
    pub kind: MessageKind,
    /// The text, for `text`.
    pub text: Option<String>,
    /// The attachment, for media kinds.
    pub media: Option<MediaIn>,
}

/// `POST /v1/messages` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutreachIn {
    /// Account to start the session on.
    pub account: String,
    /// The customer's provider id.
    pub customer_id: String,
    /// `text` or `image`.
    pub kind: MessageKind,
    /// The text, for `text`.
    pub text: Option<String>,
    /// The attachment, for media kinds.
    pub media: Option<MediaIn>,
    /// Must be `true`: starting a session is a deliberate act.
    pub confirm_new_session: Option<bool>,
}

/// What a send carries, after its shape was checked.
#[derive(Debug, Clone)]
struct Content {
    kind: MessageKind,
    text: Option<String>,
    media: Option<Media>,
}

/// 400 for a body whose fields do not fit its `kind`.
fn content_shape(
    kind: MessageKind,
    text: Option<String>,
    media: Option<MediaIn>,
) -> Result<Content, ApiError> {
    match kind {
        MessageKind::Text => {
            if media.is_some() {
                return Err(ApiError::invalid_request(
                    "A `text` message carries `text`, not `media`.",
                ));
            }
            match text {
                Some(t) if !t.is_empty() => Ok(Content {
                    kind,
                    text: Some(t),
                    media: None,
                }),
                _ => Err(ApiError::invalid_request(
                    "A `text` message needs a non-empty `text`.",
                )),
            }
        }
        MessageKind::Image | MessageKind::Audio | MessageKind::Video | MessageKind::File => {
            if text.is_some() {
                return Err(ApiError::invalid_request(format!(
                    "An `{}` message carries `media`, not `text`.",
                    kind.as_str()
                )));
            }
            let Some(m) = media else {
                return Err(ApiError::invalid_request(format!(
                    "An `{}` message needs `media` with a `url`.",
                    kind.as_str()
                )));
            };
            let ok = url::Url::parse(&m.url)
                .ok()
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(ApiError::invalid_request(
                    "`media.url` must be an http(s) URL.",
                ));
            }
            Ok(Content {
                kind,
                text: None,
                media: Some(Media {
                    url: Some(m.url),
                    file_id: None,
                    mime_type: m.mime_type,
                    file_name: m.file_name,
                    size_bytes: None,
                }),
            })
        }
        // Never sendable; refused as unsupported content after the
        // capability check, whatever else the body holds.
        _ => Ok(Content {
            kind,
            text: None,
            media: None,
        }),
    }
}

/// 422 `unsupported_operation` naming what the account cannot do.
pub fn unsupported(account: &Account, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unsupported_operation",
        format!(
            "Account {} ({}) does not support {what}.",
            account.config.name,
            account.provider.name()
        ),
    )
}

/// The configured account of a stored session or a request (422 when the
/// configuration no longer has it: nothing can act on it).
pub fn configured<'a>(state: &'a AppState, name: &str) -> Result<&'a Account, ApiError> {
    state.accounts.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_operation",
            format!("Account {name} is not configured on this gateway."),
        )
    })
}

/// Capability, then content kind, then length (the contract's 422 order).
fn check_sendable(
    account: &Account,
    needed: Capability,
    what: &str,
    content: &Content,
) -> Result<(), ApiError> {
    if !account.provider.capabilities().has(needed) {
        return Err(unsupported(account, what));
    }
    let Some(limits) = account.provider.send_limits() else {
        return Err(unsupported(account, what));
    };
    if !limits.kinds.contains(&content.kind) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_content",
            format!(
                "Provider {} cannot send `{}` messages (it sends: {}).",
                account.provider.name(),
                content.kind.as_str(),
                limits
                    .kinds
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let (Some(max), Some(text)) = (limits.max_text_chars, &content.text) {
        let len = text.chars().count();
        if len > max {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "content_too_long",
                format!(
                    "The text has {len} characters; provider {} takes at most {max}.",
                    account.provider.name()
                ),
            ));
        }
    }
    Ok(())
}

/// A gateway message to the customer, pending delivery.
pub fn pending_message(
    session: &Session,
    sender: Sender,
    kind: MessageKind,
    text: Option<String>,
    media: Option<Media>,
) -> Message {
    Message {
        id: new_id("msg"),
        session_id: session.id.clone(),
        provider: session.provider.clone(),
        account: session.account.clone(),
        external_id: None,
        direction: Direction::Outbound,
        sender,
        kind,
        text,
        media,
        card: None,
        event: None,
        sent_at: Utc::now(),
        received_at: None,
        delivery: Some(Delivery {
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
        }),
        raw: None,
    }
}

/// The session's agent as the sender of an agent message (role only when
/// the session has no known agent).
fn agent_sender(session: &Session) -> Sender {
    match &session.agent {
        Some(a) => Sender {
            role: Role::Agent,
            external_id: a.external_id.clone(),
            name: a.name.clone(),
            avatar_url: a.avatar_url.clone(),
        },
        None => Sender::role_only(Role::Agent),
    }
}

/// The outbox payload for `message`.
pub fn payload_for(message: &Message, customer_id: String) -> OutboxPayload {
    OutboxPayload {
        customer_id,
        kind: message.kind,
        text: message.text.clone(),
        media_url: message.media.as_ref().and_then(|m| m.url.clone()),
        created_at: message.sent_at,
    }
}

/// Stores `send` and answers 202 with the message.
async fn store_send(
    state: &AppState,
    mut send: NewSend,
    reservation: Option<&Reservation>,
) -> Result<Response, ApiError> {
    let body = json!({ "data": send.message });
    send.idempotency = reservation.map(|r| r.answer(StatusCode::ACCEPTED, &body));
    match state.store.enqueue_send(&send).await? {
        EnqueueOutcome::Stored(_) => Ok((StatusCode::ACCEPTED, Json(body)).into_response()),
        EnqueueOutcome::SessionNotFound => Err(ApiError::not_found("session")),
        EnqueueOutcome::SessionClosed => Err(closed_session()),
    }
}

fn closed_session() -> ApiError {
    ApiError::invalid_state("The session is closed; restart it or start a new one.")
}

#[allow(clippy::too_many_arguments)]
async fn send(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<SendIn>,
) -> Result<Response, ApiError> {
    let JsonBody {
        value: input,
        canonical,
    } = body;
    let content = content_shape(input.kind, input.text, input.media)?;
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
        check_sendable(account, Capability::Send, "sending messages", &content)?;
        if session.status == SessionStatus::Closed {
            return Err(closed_session());
        }
        let customer_id = session.customer.external_id.clone().ok_or_else(|| {
            ApiError::invalid_state(
                "The session's customer is not known, so nothing can be sent to them.",
            )
        })?;
        let message = pending_message(
            &session,
            agent_sender(&session),
            content.kind,
            content.text,
            content.media,
        );
        let send = NewSend {
            payload: payload_for(&message, customer_id),
            message,
            kind: OutboxKind::Send,
            new_session: None,
            idempotency: None,
        };
        store_send(&state, send, reservation.as_ref()).await
    }
    .await;
    idempotency::release_on_error(&state, reservation.as_ref(), result).await
}

#[allow(clippy::too_many_arguments)]
async fn outreach(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<OutreachIn>,
) -> Result<Response, ApiError> {
    let JsonBody {
        value: input,
        canonical,
    } = body;
    if input.account.trim().is_empty() {
        return Err(ApiError::invalid_request(
            "`account` must name a configured account.",
        ));
    }
    if input.customer_id.trim().is_empty() {
        return Err(ApiError::invalid_request(
            "`customer_id` must not be empty.",
        ));
    }
    let content = content_shape(input.kind, input.text, input.media)?;
    let reservation =
        match idempotency::begin(&state, &caller, &headers, &method, uri.path(), &canonical).await?
        {
            Begun::Replay(r) => return Ok(r),
            Begun::Proceed(r) => r,
        };
    let result = async {
        let account = state
            .accounts
            .get(&input.account)
            .filter(|a| caller.scope.allows(&a.config.name))
            .ok_or_else(|| ApiError::not_found("account"))?;
        check_sendable(account, Capability::Outreach, "starting sessions (outreach)", &content)?;
        if input.confirm_new_session != Some(true) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "confirmation_required",
                "This starts a new session with the customer; send `confirm_new_session: true` to confirm.",
            ));
        }
        let now = Utc::now();
        let session_id = new_id("ses");
        let mut session = Session {
            id: session_id,
            provider: account.config.provider.clone(),
            account: account.config.name.clone(),
            external_id: String::new(),
            status: SessionStatus::Open,
            channel: None,
            customer: Participant {
                external_id: Some(input.customer_id.clone()),
                name: None,
                avatar_url: None,
            },
            agent: None,
            started_by: Some(StartedBy::Agent),
            rating: None,
            created_at: now,
            assigned_at: None,
            closed_at: None,
            first_response_at: None,
            last_message_at: None,
            updated_at: now,
            message_count: 0,
            raw: None,
        };
        let mut message = pending_message(
            &session,
            Sender::role_only(Role::Agent),
            content.kind,
            content.text,
            content.media,
        );
        message.sent_at = now;
        // Until the provider names the session, its id is provisional.
        session.external_id = format!("{PROVISIONAL_SESSION_PREFIX}{}", message.id);
        let send = NewSend {
            payload: payload_for(&message, input.customer_id.clone()),
            message,
            kind: OutboxKind::Outreach,
            new_session: Some(session),
            idempotency: None,
        };
        store_send(&state, send, reservation.as_ref()).await
    }
    .await;
    idempotency::release_on_error(&state, reservation.as_ref(), result).await
}

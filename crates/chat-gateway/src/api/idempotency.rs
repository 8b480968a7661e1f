//! `Idempotency-Key` on action endpoints.
//!
//! A key is scoped by API key name (a fixed name when the gateway runs
//! without keys) and bound to a hash of the method, path and canonical body.
//! The first request reserves it; a repeat with the same request gets the
//! first answer again (status and body, with `Idempotent-Replayed: true`),
//! waiting for it while the first is still working; a repeat with another
//! request gets 422 `idempotency_key_reused`. Only answers worth replaying
//! are kept: a request that failed before doing anything releases the key.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::store::{IdempotencyAnswer, IdempotencyBegin};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// Scope of keys when the gateway runs without API keys.
pub const ANONYMOUS_SCOPE: &str = "_anonymous";

/// Longest accepted key.
const MAX_KEY_LEN: usize = 255;

/// How often a repeat looks whether the first request has answered.
const WAIT_STEP: Duration = Duration::from_millis(25);

/// A reserved key this request must answer for.
#[derive(Debug, Clone)]
pub struct Reservation {
    scope: String,
    key: String,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Begun {
    /// Do the work; answer for the reservation if there is one.
    Proceed(Option<Reservation>),
    /// Answered before: send this.
    Replay(Response),
}

/// Reads the header and reserves the key, waits for a concurrent first
/// request, or answers a repeat.
pub async fn begin(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    canonical_body: &str,
) -> Result<Begun, ApiError> {
    let Some(raw) = headers.get(HEADER) else {
        return Ok(Begun::Proceed(None));
    };
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            ApiError::invalid_request(format!(
                "`Idempotency-Key` must be 1 to {MAX_KEY_LEN} visible ASCII characters."
            ))
        })?
        .to_string();
    let scope = caller
        .key_name
        .clone()
        .unwrap_or_else(|| ANONYMOUS_SCOPE.to_string());
    let hash = hex::encode(Sha256::digest(
        format!("{method}\n{path}\n{canonical_body}").as_bytes(),
    ));
    // A reservation unanswered for longer than any request may run belongs
    // to a request that died: take it over.
    let stale = chrono::Duration::seconds(
        i64::try_from(state.config.server.request_timeout_secs).unwrap_or(3600) * 2 + 10,
    );
    let retention = state.config.idempotency.retention();
    loop {
        let now = Utc::now();
        match state
            .store
            .idempotency_begin(&scope, &key, &hash, now, now - stale, now - retention)
            .await?
        {
            IdempotencyBegin::Started => {
                return Ok(Begun::Proceed(Some(Reservation { scope, key })))
            }
            IdempotencyBegin::Replay { status, body } => {
                return Ok(Begun::Replay(replay(status, body)))
            }
            IdempotencyBegin::Mismatch => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "This Idempotency-Key was used with a different request; use a new key.",
                ))
            }
            IdempotencyBegin::InProgress => tokio::time::sleep(WAIT_STEP).await,
        }
    }
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

impl Reservation {
    /// The answer to store with the work's own transaction.
    pub fn answer(&self, status: StatusCode, body: &Value) -> IdempotencyAnswer {
        IdempotencyAnswer {
            scope: self.scope.clone(),
            key: self.key.clone(),
            status: status.as_u16(),
            body: body.to_string(),
        }
    }

    /// Stores the answer after work that had no transaction to put it in.
    pub async fn finish(&self, state: &AppState, status: StatusCode, body: &Value) {
        if let Err(e) = state
            .store
            .idempotency_finish(&self.scope, &self.key, status.as_u16(), &body.to_string())
            .await
        {
            tracing::warn!(error = %e, "cannot store the idempotent answer; a repeat will act again");
        }
    }

    /// Releases the key: the request ended without anything to replay.
    pub async fn abandon(&self, state: &AppState) {
        if let Err(e) = state
            .store
            .idempotency_abandon(&self.scope, &self.key)
            .await
        {
            tracing::warn!(error = %e, "cannot release an idempotency key; it frees itself when stale");
        }
    }
}

/// Releases `reservation` when `result` is an error; passes `result` on.
pub async fn release_on_error<T>(
    state: &AppState,
    reservation: Option<&Reservation>,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    if result.is_err() {
        if let Some(r) = reservation {
            r.abandon(state).await;
        }
    }
    result
}

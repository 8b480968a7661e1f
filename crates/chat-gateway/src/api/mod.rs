//! The REST API: one router per resource, merged here behind the shared
//! layers (request id, access log, CORS, compression, metrics, time budget,
//! auth, body limit).

pub mod accounts;
pub mod auth;
pub mod body;
pub mod budget;
pub mod conventions;
pub mod customers;
pub mod docs;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod media;
pub mod messages;
pub mod ratelimit;
pub mod sends;
pub mod session_actions;
pub mod sessions;
pub mod stats;
pub mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::{HttpLabels, Metrics, RouteLabels};
use crate::providers::Accounts;
use crate::store::Store;
use error::{ApiError, REQUEST_ID};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Everything handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Configured accounts and their providers.
    pub accounts: Arc<Accounts>,
    /// API keys.
    pub auth: auth::Auth,
    /// Per-key rate limits.
    pub limiter: ratelimit::Limiter,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Cancelled on SIGTERM/SIGINT: held polls answer, streams end.
    pub shutdown: CancellationToken,
    /// Recent events in memory, shared by every feed reader.
    pub feed: Arc<crate::feed::EventHub>,
    /// Accounts with a backfill running in this process.
    pub backfills: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl AppState {
    /// Builds the shared state from its parts.
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        accounts: Arc<Accounts>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        AppState {
            feed: crate::feed::EventHub::start(store.clone(), shutdown.clone()),
            auth: auth::Auth::new(config.api_keys.clone()),
            limiter: ratelimit::Limiter::new(config.api_keys.iter().map(|k| k.rate_limit)),
            store,
            accounts,
            metrics,
            config,
            shutdown,
            backfills: Default::default(),
        }
    }
}

/// The whole API as one router; tests call it with `oneshot` or serve it on
/// port 0.
pub fn app(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .merge(accounts::router())
        .merge(sessions::router())
        .merge(messages::router())
        .merge(media::router())
        .merge(sends::router())
        .merge(session_actions::router())
        .merge(events::router())
        .merge(webhooks::router())
        .merge(customers::router())
        .merge(stats::router())
        .route_layer(from_fn_with_state(state.clone(), auth::require_key));
    let mut public = Router::new()
        .merge(health::router())
        .merge(docs::router())
        .merge(crate::console::router());
    if state.config.server.metrics_listen.is_none() {
        public = public.merge(health::metrics_router());
    }
    let router = Router::new()
        .merge(public)
        .merge(v1)
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed on this path.",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn_with_state(state.clone(), observe))
        .layer(conventions::compression());
    let router = match conventions::Cors::new(&state.config.server.cors_origins) {
        Some(cors) => router.layer(from_fn_with_state(cors, conventions::cors)),
        None => router,
    };
    router
        .layer(conventions::access_log())
        .layer(from_fn(request_id))
        .with_state(state)
}

/// Gives every request an id (the caller's `x-request-id` when sane) and
/// echoes it on the response.
async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let mut req = req;
    if let Ok(v) = HeaderValue::from_str(&id) {
        // Inner layers (the access log) read the id from the request.
        req.headers_mut().insert("x-request-id", v);
    }
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        route = tracing::field::Empty,
    );
    let mut resp = REQUEST_ID
        .scope(
            id.clone(),
            tracing::Instrument::instrument(next.run(req), span),
        )
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Records metrics and applies the ordinary-request time budget (long polls
/// and streams are exempt: they manage their own). Work inside the request
/// reads its [`budget::Deadline`] and stops [`budget::MARGIN`] earlier, so
/// this outer limit is only a safety net and never pre-empts a body read
/// (408) or a provider call (504).
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let budget = Duration::from_secs(state.config.server.request_timeout_secs.max(1));
    let mut req = req;
    req.extensions_mut().insert(budget::Deadline::after(budget));
    let resp = if route.starts_with("/v1/events") {
        next.run(req).await
    } else {
        match tokio::time::timeout(budget, next.run(req)).await {
            Ok(r) => r,
            Err(_) => {
                ApiError::unavailable("The request took longer than the server's time budget.")
                    .into_response()
            }
        }
    };
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: method.clone(),
            route: route.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    resp
}

//! `/v1/events` (long poll) and `/v1/events/stream` (SSE): the change feed.
//!
//! Both read the same gap-safe log: `seq` grows in commit order (see
//! `store::postgres`), and each read is bounded by the highest `seq` seen
//! *before* it, so a cursor can move past events a filter skipped without
//! ever moving past one committed later. Waiters sleep on the store's commit
//! signal (in-process, and `LISTEN/NOTIFY` across PostgreSQL replicas).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chat_core::{Event, EventType};
use futures_util::stream::{Stream, StreamExt as _};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{parse_limit, ApiQuery};
use super::AppState;
use crate::feed::FeedFilter;
use crate::metrics::Metrics;
use crate::store::EventQuery;

/// How long an EventSource waits before reconnecting: short, because a
/// reconnect resumes from `Last-Event-ID` and loses nothing.
const SSE_RETRY: Duration = Duration::from_secs(2);

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/events", get(poll))
        .route("/v1/events/stream", get(stream))
}

/// Feed parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedParams {
    after: Option<String>,
    wait: Option<String>,
    limit: Option<String>,
    types: Option<String>,
    account: Option<String>,
}

/// A validated feed request.
#[derive(Debug, Clone)]
struct Feed {
    after: Option<i64>,
    filter: FeedFilter,
}

fn parse_seq(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::invalid_request("`after` must be a non-negative integer seq."))
}

fn parse_last_event_id(raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::invalid_request("`Last-Event-ID` must be a non-negative integer seq.")
        })
}

fn parse_feed(
    p: &FeedParams,
    caller: &Caller,
    last_event_id: Option<&str>,
) -> Result<Feed, ApiError> {
    // `Last-Event-ID` wins: a reconnecting EventSource repeats the URL it
    // started with, so its `?after=` is stale while the header is current.
    let after = match (last_event_id, &p.after) {
        (Some(id), _) => Some(parse_last_event_id(id)?),
        (None, Some(a)) => Some(parse_seq(a)?),
        (None, None) => None,
    };
    let mut types = Vec::new();
    if let Some(t) = &p.types {
        for name in t.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            types.push(EventType::parse(name).ok_or_else(|| {
                ApiError::invalid_request(format!("`types` has an unknown event type `{name}`."))
            })?);
        }
    }
    Ok(Feed {
        after,
        filter: FeedFilter {
            limit: parse_limit(p.limit.as_deref(), 100, 1000)?,
            types,
            account: p.account.clone(),
            scope: caller.scope.clone(),
        },
    })
}

/// Reads one batch: events after `after` up to the newest committed seq.
/// Returns them and the cursor to continue from. Served from the hub's
/// memory when it holds everything after `after`, else from the database.
async fn read_batch(
    state: &AppState,
    feed: &Feed,
    after: i64,
) -> Result<(Vec<Event>, i64), ApiError> {
    if let Some(hit) = state.feed.read(after, &feed.filter) {
        return Ok(hit);
    }
    read_from_database(state, feed, after).await
}

/// [`read_batch`] straight from the database: fresh to the last commit,
/// for readers that will not wait (the hub may be a moment behind).
async fn read_from_database(
    state: &AppState,
    feed: &Feed,
    after: i64,
) -> Result<(Vec<Event>, i64), ApiError> {
    let store = state.store.as_ref();
    let until = store.latest_seq().await?;
    let events = store
        .read_events(&EventQuery {
            after,
            limit: feed.filter.limit,
            types: feed.filter.types.clone(),
            account: feed.filter.account.clone(),
            scope: feed.filter.scope.clone(),
            until: Some(until),
        })
        .await?;
    let next = if events.len() as u32 >= feed.filter.limit {
        events
            .last()
            .and_then(|e| e.seq.parse().ok())
            .unwrap_or(after)
    } else {
        until.max(after)
    };
    Ok((events, next))
}

/// "Now" for a reader without `after`: the newest committed seq. Read from
/// the database (the hub may be a moment behind a commit the caller just made).
async fn now_seq(state: &AppState) -> Result<i64, ApiError> {
    Ok(state.store.latest_seq().await?)
}

/// Counts a waiter while it lives.
struct WaiterGuard(Arc<Metrics>);

impl WaiterGuard {
    fn new(m: &Arc<Metrics>) -> Self {
        m.feed_waiters.inc();
        WaiterGuard(m.clone())
    }
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.0.feed_waiters.dec();
    }
}

async fn poll(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<FeedParams>,
) -> Result<Json<Value>, ApiError> {
    let wait =
        match p.wait.as_deref() {
            None => 25,
            Some(w) => w.parse::<u64>().ok().filter(|w| *w <= 60).ok_or_else(|| {
                ApiError::invalid_request("`wait` must be an integer from 0 to 60.")
            })?,
        };
    let feed = parse_feed(&p, &caller, None)?;
    let mut wake = state.feed.subscribe();
    let mut after = match feed.after {
        Some(a) => a,
        None => now_seq(&state).await?,
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    let _waiter = WaiterGuard::new(&state.metrics);
    loop {
        wake.borrow_and_update();
        let (events, next) = if wait == 0 {
            read_from_database(&state, &feed, after).await?
        } else {
            read_batch(&state, &feed, after).await?
        };
        after = next;
        if !events.is_empty() || Instant::now() >= deadline || state.shutdown.is_cancelled() {
            return Ok(Json(
                json!({ "data": events, "next_cursor": after.to_string() }),
            ));
        }
        tokio::select! {
            _ = wake.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = state.shutdown.cancelled() => {}
        }
    }
}

async fn stream(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<FeedParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    if p.wait.is_some() {
        return Err(ApiError::invalid_request(
            "`wait` applies to /v1/events only.",
        ));
    }
    let last_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let feed = parse_feed(&p, &caller, last_id)?;
    let start = match feed.after {
        Some(a) => a,
        None => now_seq(&state).await?,
    };
    // Surface a 410 before the stream starts rather than inside it.
    read_from_database(
        &state,
        &Feed {
            after: feed.after,
            filter: FeedFilter {
                limit: 1,
                ..feed.filter.clone()
            },
        },
        start,
    )
    .await?;
    // The first line tells EventSource how soon to reconnect after a drop.
    let retry = futures_util::stream::once(async {
        Ok::<_, Infallible>(SseEvent::default().retry(SSE_RETRY))
    });
    let stream = futures_util::stream::unfold(
        (
            state,
            feed,
            start,
            Vec::<Event>::new().into_iter(),
            None::<WaiterGuard>,
        ),
        |(state, feed, mut after, mut pending, mut guard)| async move {
            // Counted as a waiter for as long as the stream lives.
            guard.get_or_insert_with(|| WaiterGuard::new(&state.metrics));
            let mut wake = state.feed.subscribe();
            loop {
                if let Some(e) = pending.next() {
                    let data = serde_json::to_string(&e).unwrap_or_else(|_| "{}".into());
                    let sse = SseEvent::default()
                        .id(e.seq.clone())
                        .event(e.event_type.as_str())
                        .data(data);
                    return Some((Ok(sse), (state, feed, after, pending, guard)));
                }
                if state.shutdown.is_cancelled() {
                    return None;
                }
                wake.borrow_and_update();
                match read_batch(&state, &feed, after).await {
                    Ok((events, next)) => {
                        after = next;
                        if !events.is_empty() {
                            pending = events.into_iter();
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "event stream read failed; ending the stream");
                        return None;
                    }
                }
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = state.shutdown.cancelled() => return None,
                }
            }
        },
    );
    Ok(Sse::new(retry.chain(stream)).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}

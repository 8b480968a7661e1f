//! The event hub: one reader per process follows the event log and keeps
//! the recent events in memory, so thousands of long polls and SSE streams
//! cost one database read per commit instead of one each.
//!
//! The hub reads exactly like a feed client (bounded by the newest committed
//! `seq` seen before each read, see `api::events`), so its buffer always
//! holds *every* event in `(floor, head]`. A reader whose cursor is at or
//! past `floor` is served from memory; an older cursor (or a cold hub) reads
//! the database, which also answers 410 for cursors past retention.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chat_core::Event;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::{AccountScope, EventQuery, Store, StoreError};

/// Events kept in memory; older ones are read from the database.
pub const BUFFER_EVENTS: usize = 10_000;

#[derive(Debug, Default)]
struct Buffer {
    /// Every event with `floor < seq <= head` is in `events`.
    floor: i64,
    head: i64,
    events: VecDeque<(i64, Event)>,
    ready: bool,
    /// Sessions erased with their customer: their events are dropped from
    /// memory and never buffered again (a read racing the erasure may
    /// still return them from the database).
    erased: std::collections::HashSet<String>,
}

/// Recent events in memory plus a signal that moves when `head` does.
#[derive(Debug)]
pub struct EventHub {
    buffer: RwLock<Buffer>,
    head: watch::Sender<i64>,
}

/// What a reader asked for.
#[derive(Debug, Clone)]
pub struct FeedFilter {
    /// At most this many.
    pub limit: u32,
    /// Only these types (empty: all).
    pub types: Vec<chat_core::EventType>,
    /// Only this account.
    pub account: Option<String>,
    /// Visible accounts.
    pub scope: AccountScope,
}

impl FeedFilter {
    fn matches(&self, e: &Event) -> bool {
        (self.types.is_empty() || self.types.contains(&e.event_type))
            && self.account.as_ref().is_none_or(|a| a == &e.account)
            && self.scope.allows(&e.account)
    }
}

impl EventHub {
    /// Starts the hub's reader; it stops with `shutdown`.
    pub fn start(store: Arc<dyn Store>, shutdown: CancellationToken) -> Arc<EventHub> {
        let hub = Arc::new(EventHub {
            buffer: RwLock::new(Buffer::default()),
            head: watch::channel(0).0,
        });
        tokio::spawn(follow(hub.clone(), store, shutdown));
        hub
    }

    /// A receiver that changes whenever new events are buffered.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }

    /// Events after `after` from memory, with the cursor to continue from;
    /// `None` when `after` is older than the buffer (read the database).
    pub fn read(&self, after: i64, filter: &FeedFilter) -> Option<(Vec<Event>, i64)> {
        let b = self.buffer.read().unwrap_or_else(|p| p.into_inner());
        if !b.ready || after < b.floor {
            return None;
        }
        let start = b.events.partition_point(|(seq, _)| *seq <= after);
        let mut out = Vec::new();
        for (seq, e) in b.events.iter().skip(start) {
            if filter.matches(e) {
                out.push(e.clone());
                if out.len() as u32 >= filter.limit {
                    return Some((out, *seq));
                }
            }
        }
        Some((out, b.head.max(after)))
    }

    /// Forgets events at or below the retention point, so a cursor there is
    /// answered by the database (with 410), not from memory.
    fn retain_after(&self, pruned: i64) {
        let mut b = self.buffer.write().unwrap_or_else(|p| p.into_inner());
        if pruned > b.floor {
            b.floor = pruned;
            while b.events.front().is_some_and(|(seq, _)| *seq <= pruned) {
                b.events.pop_front();
            }
        }
    }

    /// Drops every buffered event of these sessions (their customer was
    /// erased), and keeps them out of the buffer from now on.
    pub fn forget_sessions(&self, session_ids: &[String]) {
        let mut b = self.buffer.write().unwrap_or_else(|p| p.into_inner());
        b.erased.extend(session_ids.iter().cloned());
        let Buffer { events, erased, .. } = &mut *b;
        events.retain(|(_, e)| !erased.contains(&e.session_id));
    }

    fn append(&self, events: Vec<Event>, head: i64) {
        let mut b = self.buffer.write().unwrap_or_else(|p| p.into_inner());
        for e in events {
            if b.erased.contains(&e.session_id) {
                continue;
            }
            if let Ok(seq) = e.seq.parse::<i64>() {
                b.events.push_back((seq, e));
            }
        }
        b.head = b.head.max(head);
        while b.events.len() > BUFFER_EVENTS {
            if let Some((seq, _)) = b.events.pop_front() {
                b.floor = seq;
            }
        }
        drop(b);
        self.head.send_replace(head);
    }
}

async fn follow(hub: Arc<EventHub>, store: Arc<dyn Store>, shutdown: CancellationToken) {
    let mut wake = store.subscribe();
    // Start at the newest committed event: older cursors read the database.
    let start = loop {
        match store.latest_seq().await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "event hub cannot start; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    {
        let mut b = hub.buffer.write().unwrap_or_else(|p| p.into_inner());
        b.floor = start;
        b.head = start;
        b.ready = true;
    }
    hub.head.send_replace(start);
    let mut head = start;
    loop {
        wake.borrow_and_update();
        match catch_up(&hub, store.as_ref(), head).await {
            Ok(h) => head = h,
            Err(e) => {
                tracing::warn!(error = %e, "event hub read failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.changed() => {}
            // A commit signal lost with a database connection costs at most this.
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Reads everything committed after `head` into the buffer.
async fn catch_up(hub: &EventHub, store: &dyn Store, mut head: i64) -> Result<i64, StoreError> {
    hub.retain_after(store.pruned_through().await?);
    loop {
        let until = store.latest_seq().await?;
        if until <= head {
            return Ok(head);
        }
        let events = store
            .read_events(&EventQuery {
                after: head,
                limit: 1000,
                types: vec![],
                account: None,
                scope: AccountScope::All,
                until: Some(until),
            })
            .await?;
        let full = events.len() >= 1000;
        let next = if full {
            events
                .last()
                .and_then(|e| e.seq.parse().ok())
                .unwrap_or(until)
        } else {
            until
        };
        hub.append(events, next);
        head = next;
        if !full {
            return Ok(head);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::EventType;

    fn ev(seq: i64, account: &str) -> Event {
        Event {
            seq: seq.to_string(),
            event_type: EventType::MessageCreated,
            at: chrono::Utc::now(),
            account: account.into(),
            provider: "spark".into(),
            session_id: "s".into(),
            message_id: None,
            data: serde_json::json!({}),
            changes: None,
        }
    }

    fn hub(floor: i64) -> EventHub {
        EventHub {
            buffer: RwLock::new(Buffer {
                floor,
                head: floor,
                events: VecDeque::new(),
                ready: true,
                erased: Default::default(),
            }),
            head: watch::channel(floor).0,
        }
    }

    fn all(limit: u32) -> FeedFilter {
        FeedFilter {
            limit,
            types: vec![],
            account: None,
            scope: AccountScope::All,
        }
    }

    #[test]
    fn erased_sessions_leave_the_buffer_and_stay_out() {
        let h = hub(0);
        let mut other = ev(2, "a");
        other.session_id = "keep".into();
        h.append(vec![ev(1, "a"), other], 2);
        h.forget_sessions(&["s".to_string()]);
        h.append(vec![ev(3, "a")], 3);
        let (got, next) = h.read(0, &all(100)).unwrap();
        assert_eq!(
            got.iter().map(|e| e.seq.as_str()).collect::<Vec<_>>(),
            ["2"]
        );
        assert_eq!(next, 3);
    }

    #[test]
    fn serves_from_memory_only_what_it_fully_holds() {
        let h = hub(10);
        h.append(vec![ev(11, "a"), ev(12, "b"), ev(14, "a")], 14);
        assert_eq!(h.read(9, &all(10)), None, "older than the buffer: database");
        let (events, next) = h.read(10, &all(10)).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(next, 14);
        let (events, next) = h.read(11, &all(1)).unwrap();
        assert_eq!(events[0].seq, "12");
        assert_eq!(next, 12, "a full page continues from its last event");
        let only_a = FeedFilter {
            account: Some("a".into()),
            ..all(10)
        };
        let (events, next) = h.read(11, &only_a).unwrap();
        assert_eq!(
            events.iter().map(|e| e.seq.as_str()).collect::<Vec<_>>(),
            ["14"]
        );
        assert_eq!(next, 14);
        let (events, next) = h.read(14, &all(10)).unwrap();
        assert!(events.is_empty());
        assert_eq!(next, 14);
    }

    #[test]
    fn retention_raises_the_floor_and_drops_old_events() {
        let h = hub(0);
        h.append(vec![ev(1, "a"), ev(2, "a"), ev(3, "a")], 3);
        h.retain_after(2);
        assert_eq!(h.read(1, &all(10)), None);
        let (events, _) = h.read(2, &all(10)).unwrap();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn trimming_raises_the_floor() {
        let h = hub(0);
        let many: Vec<Event> = (1..=(BUFFER_EVENTS as i64 + 5))
            .map(|s| ev(s, "a"))
            .collect();
        h.append(many, BUFFER_EVENTS as i64 + 5);
        assert_eq!(h.read(4, &all(10)), None);
        assert!(h.read(5, &all(10)).is_some());
    }
}

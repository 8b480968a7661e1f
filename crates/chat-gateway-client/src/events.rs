//! The event feed as a stream that never loses its place.
//!
//! Both variants keep the `seq` of the last event they yielded and, after
//! any temporary failure (the gateway restarting, a dropped connection,
//! 429/502/503/504), wait with exponential backoff and ask again from that
//! `seq`: the gateway's feed then gives every later event exactly once.
//! An event whose `seq` is not above the last one yielded is dropped, so a
//! reader never sees one twice. A permanent error (401, 403, 400, 410
//! `cursor_expired`) is yielded and ends the stream.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use reqwest::header::{HeaderValue, ACCEPT};
use serde::Deserialize;

use crate::client::{Call, Client};
use crate::error::{Error, Result};
use crate::query::EventsQuery;
use crate::retry::backoff;
use crate::types::Event;

/// One answer of `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventPage {
    /// The events, oldest first.
    pub data: Vec<Event>,
    /// Pass it as `after` to continue.
    pub next_cursor: String,
}

/// Longest pause between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);
/// First pause after a failure.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(200);

struct Feed {
    client: Client,
    query: EventsQuery,
    /// The `after` of the next request (None: "from now on").
    cursor: Option<String>,
    /// The highest `seq` yielded, to drop repeats.
    last: Option<u64>,
    buf: VecDeque<Event>,
    failures: u32,
    done: bool,
    /// SSE only: the open stream and its undecoded bytes.
    sse: Option<SseConn>,
}

struct SseConn {
    resp: reqwest::Response,
    pending: Vec<u8>,
    data: String,
}

impl Feed {
    fn new(client: &Client, query: EventsQuery) -> Feed {
        let cursor = query.after.clone();
        Feed {
            client: client.clone(),
            query,
            cursor,
            last: None,
            buf: VecDeque::new(),
            failures: 0,
            done: false,
            sse: None,
        }
    }

    /// Queues `event` unless it repeats one already yielded.
    fn push(&mut self, event: Event) {
        let seq = event.seq_number();
        if let (Some(seq), Some(last)) = (seq, self.last) {
            if seq <= last {
                return;
            }
        }
        if let Some(seq) = seq {
            self.last = Some(seq);
            self.cursor = Some(event.seq.clone());
        }
        self.buf.push_back(event);
    }

    /// After a failure: `Some(err)` to yield and stop, or `None` having
    /// slept before the next try.
    async fn failed(&mut self, err: Error) -> Option<Error> {
        self.sse = None;
        let temporary = err.is_temporary()
            || matches!(&err, Error::Transport(_))
            || matches!(&err, Error::Api(e) if e.status.is_server_error());
        if !temporary {
            self.done = true;
            return Some(err);
        }
        self.failures += 1;
        let pause = err
            .api()
            .and_then(|e| e.retry_after)
            .unwrap_or_else(|| backoff(FIRST_RECONNECT_DELAY, MAX_RECONNECT_DELAY, self.failures));
        tokio::time::sleep(pause).await;
        None
    }
}

impl Client {
    /// `GET /v1/events`: one long poll (held up to `wait_secs` when nothing
    /// is new).
    pub async fn events_page(&self, query: &EventsQuery) -> Result<EventPage> {
        self.poll_events(query, query.after.as_deref()).await
    }

    async fn poll_events(&self, query: &EventsQuery, after: Option<&str>) -> Result<EventPage> {
        let mut call = Call::get(&["v1", "events"], query.query(after));
        // The poll is held up to `wait` seconds (gateway default 25).
        let wait = u64::from(query.wait_secs.unwrap_or(25));
        call.timeout = Some(self.inner.timeout + Duration::from_secs(wait));
        // The stream does its own reconnecting, with a longer patience.
        call.safety = crate::client::Safety::Once;
        self.json(call).await
    }

    /// The event feed as an endless stream of long polls that survives
    /// gateway restarts and resumes from the last event it yielded.
    ///
    /// With `query.after` absent it starts with the events from now on;
    /// `EventsQuery::from_start()` reads everything retained.
    pub fn events(&self, query: EventsQuery) -> BoxStream<'static, Result<Event>> {
        stream::unfold(Feed::new(self, query), |mut feed| async move {
            loop {
                if let Some(e) = feed.buf.pop_front() {
                    return Some((Ok(e), feed));
                }
                if feed.done {
                    return None;
                }
                let answer = feed
                    .client
                    .poll_events(&feed.query, feed.cursor.as_deref())
                    .await;
                match answer {
                    Ok(page) => {
                        feed.failures = 0;
                        for e in page.data {
                            feed.push(e);
                        }
                        // The gateway's cursor is authoritative: it also
                        // moves an empty answer from "now" to a position,
                        // so nothing is missed in between.
                        feed.cursor = Some(page.next_cursor);
                    }
                    Err(err) => {
                        if let Some(err) = feed.failed(err).await {
                            return Some((Err(err), feed));
                        }
                    }
                }
            }
        })
        .boxed()
    }

    /// The same feed read as Server-Sent Events from `/v1/events/stream`,
    /// reconnecting with `Last-Event-ID` after any interruption.
    pub fn events_sse(&self, query: EventsQuery) -> BoxStream<'static, Result<Event>> {
        stream::unfold(Feed::new(self, query), |mut feed| async move {
            loop {
                if let Some(e) = feed.buf.pop_front() {
                    return Some((Ok(e), feed));
                }
                if feed.done {
                    return None;
                }
                if feed.sse.is_none() {
                    match feed
                        .client
                        .open_sse(&feed.query, feed.cursor.as_deref())
                        .await
                    {
                        Ok(resp) => {
                            feed.sse = Some(SseConn {
                                resp,
                                pending: Vec::new(),
                                data: String::new(),
                            })
                        }
                        Err(err) => {
                            if let Some(err) = feed.failed(err).await {
                                return Some((Err(err), feed));
                            }
                            continue;
                        }
                    }
                }
                let Some(conn) = feed.sse.as_mut() else {
                    continue;
                };
                match conn.resp.chunk().await {
                    Ok(Some(bytes)) => {
                        conn.pending.extend_from_slice(&bytes);
                        let events = conn.drain_events();
                        if !events.is_empty() {
                            feed.failures = 0;
                        }
                        for e in events {
                            feed.push(e);
                        }
                    }
                    // The gateway ended the stream (shutting down): reconnect.
                    Ok(None) => {
                        feed.sse = None;
                        feed.failures += 1;
                        let pause =
                            backoff(FIRST_RECONNECT_DELAY, MAX_RECONNECT_DELAY, feed.failures);
                        tokio::time::sleep(pause).await;
                    }
                    Err(err) => {
                        if let Some(err) = feed.failed(Error::Transport(err)).await {
                            return Some((Err(err), feed));
                        }
                    }
                }
            }
        })
        .boxed()
    }

    async fn open_sse(
        &self,
        query: &EventsQuery,
        after: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut q = query.clone();
        q.wait_secs = None;
        q.limit = None;
        let mut call = Call::get(&["v1", "events", "stream"], q.query(None));
        call.headers
            .insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(after) = after {
            let value = HeaderValue::from_str(after)
                .map_err(|_| Error::Decode(format!("bad event cursor {after:?}")))?;
            call.headers.insert("last-event-id", value);
        }
        // No overall deadline: the stream lives as long as the reader wants.
        call.timeout = Some(Duration::from_secs(u64::from(u32::MAX)));
        call.safety = crate::client::Safety::Once;
        self.execute(call).await
    }
}

impl SseConn {
    /// Decodes every complete SSE event in the buffer (a `data:` block ended
    /// by a blank line); comments, `retry:` and `id:`/`event:` lines need
    /// nothing more (the JSON carries `seq` and `type`). Undecodable data is
    /// skipped: the next reconnect resumes from the last good `seq`.
    fn drain_events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    if let Ok(e) = serde_json::from_str::<Event>(&self.data) {
                        out.push(e);
                    }
                    self.data.clear();
                }
            } else if let Some(d) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        out
    }
}

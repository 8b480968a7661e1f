//! The event stream across a gateway restart (SIGKILL), long-poll and SSE.

use std::collections::HashSet;
use std::time::Duration;

use chat_gateway_client::{Event, EventType, EventsQuery};
use futures_util::StreamExt;

use crate::on_both_backends;
use crate::support::*;

/// Reads the stream into a channel in the background.
fn collect(
    mut stream: futures_util::stream::BoxStream<'static, chat_gateway_client::Result<Event>>,
) -> tokio::sync::mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            match item {
                Ok(e) => {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
                Err(e) => panic!("the event stream ended on {e}"),
            }
        }
    });
    rx
}

/// Receives until a `message.created` of each text has been seen.
async fn until_texts(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    seen: &mut Vec<Event>,
    texts: &[&str],
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let have: HashSet<String> = seen
            .iter()
            .filter(|e| e.event_type == EventType::MessageCreated)
            .filter_map(|e| e.message().and_then(|m| m.text))
            .collect();
        if texts.iter().all(|t| have.contains(*t)) {
            return;
        }
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("waiting for {texts:?}; have {have:?}"))
            .expect("stream task ended");
        seen.push(e);
    }
}

fn assert_once_in_order(seen: &[Event]) {
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq_number().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs not strictly increasing: {seqs:?}"
    );
}

async fn the_event_stream_survives_a_gateway_restart(db: Db) {
    let mut env = Env::start(db).await;
    let client = env.client();
    let query = EventsQuery {
        wait_secs: Some(2),
        ..EventsQuery::from_start()
    };
    let mut poll = collect(client.events(query.clone()));
    let mut sse = collect(client.events_sse(query));
    let sim = env.control();
    for n in 1..=3 {
        inject(&sim, &format!("E{n}"), &format!("before {n}"));
    }
    let before = ["before 1", "before 2", "before 3"];
    let mut seen = Vec::new();
    until_texts(&mut poll, &mut seen, &before).await;
    let mut seen_sse = Vec::new();
    until_texts(&mut sse, &mut seen_sse, &before).await;

    env.gw.kill();
    // Written at the provider while the gateway is down.
    for n in 1..=3 {
        inject(&sim, &format!("E{n}"), &format!("during {n}"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.gw.restart().await;
    inject(&sim, "E4", "after");
    let all = ["during 1", "during 2", "during 3", "after"];
    until_texts(&mut poll, &mut seen, &all).await;
    until_texts(&mut sse, &mut seen_sse, &all).await;

    for events in [&seen, &seen_sse] {
        assert_once_in_order(events);
        let created: Vec<String> = events
            .iter()
            .filter(|e| e.event_type == EventType::MessageCreated)
            .filter_map(|e| e.message().and_then(|m| m.text))
            .collect();
        for t in before.iter().chain(all.iter()) {
            assert_eq!(
                created.iter().filter(|c| c == t).count(),
                1,
                "{t} once: {created:?}"
            );
        }
    }
    // Both readings of the feed agree on the events they share.
    let n = seen.len().min(seen_sse.len());
    let a: Vec<_> = seen[..n].iter().map(|e| (&e.seq, &e.event_type)).collect();
    let b: Vec<_> = seen_sse[..n]
        .iter()
        .map(|e| (&e.seq, &e.event_type))
        .collect();
    assert_eq!(a, b);
}

on_both_backends!(the_event_stream_survives_a_gateway_restart);

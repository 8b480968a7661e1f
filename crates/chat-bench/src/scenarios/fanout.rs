//! `fanout`: many feed waiters, one message; how long until all have it,
//! and what the waiting costs the gateway in memory.
//!
//! Long polls and SSE streams each get their own gateway process (fresh
//! database, Spark account), which serves that mode's rounds. A round
//! opens the waiters in batches of [`BATCH`] (each a new connection:
//! `GET /v1/events?after=SEQ&wait=60`, or `GET /v1/events/stream?after=SEQ`
//! for the SSE rounds) and waits, batch by batch, for the gateway's
//! `feed_waiters` gauge to count them, so no waiter is still connecting when
//! the clock starts. Then the harness injects one message into the Spark
//! simulator (t0) and every waiter records when it read that message's
//! `message.created` (a long poll whose answer lacks it polls again from its
//! cursor). Figures per round: the p99 and the max of (receipt - t0) over
//! all waiters, and the gateway's peak `VmRSS`, sampled every 50 ms from the
//! first connection to the last receipt (later rounds include what earlier
//! rounds left allocated: the steady state of a gateway serving waiters).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::StreamExt as _;
use provider_sim::SparkInject;
use serde_json::{json, Value};

use super::{note, Accounts, Ctx, Gateway, Round, Sim, SimSpec};
use crate::db::FreshDb;
use crate::procs::Memory;
use crate::report::{Bound, Metric, Target};
use crate::sse::SseParser;
use crate::stats::{percentile, Runs};

/// Waiters opened at a time.
const BATCH: usize = 500;
/// The customer whose session carries the messages.
const CUSTOMER: &str = "fanout";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Poll,
    Sse,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Poll => "poll",
            Mode::Sse => "sse",
        }
    }
}

/// Runs the scenario: long polls, then SSE streams, each against a gateway
/// process of its own (so one mode's memory does not count for the other).
pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Metric>> {
    let mut metrics = Vec::new();
    for mode in [Mode::Poll, Mode::Sse] {
        let db = ctx.fresh_db().await?;
        let result = measure(ctx, &db, mode).await;
        db.cleanup().await?;
        metrics.extend(result?);
    }
    Ok(metrics)
}

async fn measure(ctx: &Ctx, db: &FreshDb, mode: Mode) -> anyhow::Result<Vec<Metric>> {
    let waiters = ctx.scale.fanout_waiters;
    let mut sim = Sim::start(ctx, SimSpec::default()).await?;
    let mut gw = Gateway::start(
        ctx,
        db,
        &sim.base,
        Accounts::Spark,
        Duration::from_millis(20),
    )
    .await?;
    sim.wait_for_live_poll().await?;
    // The session exists before the rounds, so each round's message is one
    // `message.created` in a known session.
    sim.inject(&message("fanout-prime")).await?;
    gw.wait_for_sessions(1).await?;

    let (mut p99, mut max, mut rss, mut missing) = (vec![], vec![], vec![], 0);
    for (n, round) in ctx.rounds().enumerate() {
        let r = fanout_round(&mut gw, &sim, mode, waiters, n).await?;
        note(
            "fanout",
            round,
            &format!(
                "{waiters} {}: p99 {:.0} ms, all {:.0} ms, {} missed, gateway RSS {:.1} MiB",
                if mode == Mode::Poll {
                    "long polls"
                } else {
                    "SSE streams"
                },
                r.p99,
                r.max,
                r.missing,
                r.rss_mib
            ),
        );
        if let Round::Measured(_) = round {
            p99.push(r.p99);
            max.push(r.max);
            rss.push(r.rss_mib);
            missing += r.missing;
        }
    }
    let mut detail = json!({"waiters": waiters, "max_ms": max});
    if missing > 0 {
        detail["incomplete"] = json!(format!("{missing} waiters never received the message"));
    }
    let name = mode.name();
    Ok(vec![
        Metric::new(
            &format!("fanout_{name}_p99"),
            "ms",
            Runs::new(p99),
            Target::Value(Bound::AtMost(500.0)),
        )
        .with_detail(detail),
        Metric::new(
            &format!("fanout_{name}_rss"),
            "MiB",
            Runs::new(rss),
            Target::Value(Bound::AtMost(256.0)),
        ),
    ])
}

fn message(text: &str) -> SparkInject {
    SparkInject {
        customer_id: Some(CUSTOMER.into()),
        customer_name: Some("扇出测试".into()),
        text: Some(text.into()),
        ..SparkInject::default()
    }
}

struct RoundResult {
    p99: f64,
    max: f64,
    missing: usize,
    rss_mib: f64,
}

async fn fanout_round(
    gw: &mut Gateway,
    sim: &Sim,
    mode: Mode,
    waiters: usize,
    n: usize,
) -> anyhow::Result<RoundResult> {
    let cursor = gw.cursor().await?;
    let marker = format!("fanout-{}-{n}", mode.name());
    let before = gw.feed_waiters().await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(180))
        .build()?;

    // Peak RSS from the first connection to the last receipt.
    let pid = gw.proc().pid();
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(m) = Memory::of(pid) {
                    peak.fetch_max(m.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let mut tasks = tokio::task::JoinSet::new();
    let mut opened = 0;
    while opened < waiters {
        let batch = BATCH.min(waiters - opened);
        for _ in 0..batch {
            let (client, base, auth) = (client.clone(), gw.base.clone(), gw.auth.clone());
            let (cursor, marker) = (cursor.clone(), marker.clone());
            tasks.spawn(async move {
                match mode {
                    Mode::Poll => poll_waiter(&client, &base, &auth, cursor, &marker).await,
                    Mode::Sse => sse_waiter(&client, &base, &auth, &cursor, &marker).await,
                }
            });
        }
        opened += batch;
        wait_for_waiters(gw, before + opened as u64).await?;
    }

    let t0 = Instant::now();
    sim.inject(&message(&marker)).await?;
    let mut latencies = Vec::with_capacity(waiters);
    let mut failures = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(Ok(Ok(at)))) => latencies.push(at.duration_since(t0).as_secs_f64() * 1000.0),
            Ok(Some(Ok(Err(e)))) => failures.push(format!("{e:#}")),
            Ok(Some(Err(e))) => failures.push(e.to_string()),
            Ok(None) => break,
            Err(_) => {
                failures.push("no message within 60 s".into());
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    if let Some(e) = failures.first() {
        eprintln!("  fanout: {} waiters failed, e.g. {e}", failures.len());
    }
    drop(client);
    // Let the gateway see the connections go before the next round.
    let settle = Instant::now() + Duration::from_secs(20);
    while gw.feed_waiters().await? > before && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing = waiters - latencies.len();
    let max = latencies.iter().copied().fold(f64::NAN, f64::max);
    Ok(RoundResult {
        p99: percentile(&mut latencies, 99.0).unwrap_or(f64::NAN),
        max,
        missing,
        rss_mib: peak.load(Ordering::Relaxed) as f64 / 1024.0,
    })
}

/// Waits until the gauge counts `want` waiters.
async fn wait_for_waiters(gw: &mut Gateway, want: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = gw.feed_waiters().await?;
        if now >= want {
            return Ok(());
        }
        gw.proc().ensure_running()?;
        if Instant::now() > deadline {
            bail!("only {now} of {want} feed waiters were held after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn has_marker(event_type: &str, data: &Value, marker: &str) -> bool {
    event_type == "message.created" && data["data"]["text"].as_str() == Some(marker)
}

/// Long polls from `cursor` until the marker arrives; returns when it did.
async fn poll_waiter(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    mut cursor: String,
    marker: &str,
) -> anyhow::Result<Instant> {
    loop {
        let resp = client
            .get(format!("{base}/v1/events?after={cursor}&wait=60"))
            .header("Authorization", auth)
            .send()
            .await?
            .error_for_status()?;
        let body: Value = serde_json::from_slice(&resp.bytes().await?)?;
        let at = Instant::now();
        let events = body["data"]
            .as_array()
            .context("no data in the feed answer")?;
        if events
            .iter()
            .any(|e| has_marker(e["type"].as_str().unwrap_or_default(), e, marker))
        {
            return Ok(at);
        }
        cursor = body["next_cursor"]
            .as_str()
            .context("no next_cursor")?
            .to_string();
    }
}

/// Reads the SSE stream from `cursor` until the marker arrives.
async fn sse_waiter(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    cursor: &str,
    marker: &str,
) -> anyhow::Result<Instant> {
    let resp = client
        .get(format!("{base}/v1/events/stream?after={cursor}"))
        .header("Authorization", auth)
        .send()
        .await?
        .error_for_status()?;
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for e in parser.push(&chunk) {
            if e.event == "message.created" && e.data.contains(marker) {
                let at = Instant::now();
                let data: Value = serde_json::from_str(&e.data)?;
                if has_marker(&e.event, &data, marker) {
                    return Ok(at);
                }
            }
        }
    }
    bail!("the stream ended before the message came")
}

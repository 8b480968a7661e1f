//! `e2e`: latency from injecting a message into the Spark simulator to an
//! SSE client receiving its `message.created`, at a steady rate.
//!
//! One gateway (fresh database, Spark account) and one SSE client on
//! `/v1/events/stream` in the harness. The injector schedules message `k`
//! at `start + k / rate`, spread over [`SESSIONS`] customers; for each it
//! records the instant, then sends `POST /_sim/spark/messages` (the
//! simulator puts it on the feed as it answers). The SSE reader, in the same
//! process, records when each message's `message.created` arrives (matched
//! by its unique text). Per run: p50 and p99 of the differences; messages
//! not received within 10 s of the last injection count as missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use provider_sim::SparkInject;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{note, Accounts, Ctx, Gateway, Round, Sim, SimSpec};
use crate::db::FreshDb;
use crate::report::{Bound, Metric, Target};
use crate::sse::SseParser;
use crate::stats::{percentile, Runs};

/// Conversations the messages are spread over.
const SESSIONS: usize = 50;

type Injected = Arc<Mutex<HashMap<String, Instant>>>;

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Metric>> {
    let db = ctx.fresh_db().await?;
    let result = measure(ctx, &db).await;
    db.cleanup().await?;
    result
}

async fn measure(ctx: &Ctx, db: &FreshDb) -> anyhow::Result<Vec<Metric>> {
    let s = &ctx.scale;
    let mut sim = Sim::start(ctx, SimSpec::default()).await?;
    let gw = Gateway::start(
        ctx,
        db,
        &sim.base,
        Accounts::Spark,
        Duration::from_millis(20),
    )
    .await?;
    sim.wait_for_live_poll().await?;

    let injected: Injected = Arc::new(Mutex::new(HashMap::new()));
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, f64)>();
    let reader = tokio::spawn(read_stream(
        gw.base.clone(),
        gw.auth.clone(),
        gw.cursor().await?,
        injected.clone(),
        tx,
    ));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let (mut p50, mut p99, mut missed, mut rates) = (vec![], vec![], 0, vec![]);
    for (run, round) in ctx.rounds().enumerate() {
        let secs = match round {
            Round::Warmup => (s.e2e_secs / 4.0).max(2.0),
            Round::Measured(_) => s.e2e_secs,
        };
        let total = (s.e2e_rate * secs).round() as usize;
        let prefix = format!("e2e-{run}-");
        let (rate, failed) = inject(&client, &sim, &injected, &prefix, total, s.e2e_rate).await?;
        // Collect this run's receipts (stragglers of earlier runs are dropped).
        let mut got: Vec<f64> = Vec::with_capacity(total);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() + failed < total {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((text, ms))) if text.starts_with(&prefix) => got.push(ms),
                Ok(Some(_)) => {}
                Ok(None) => anyhow::bail!("the SSE stream ended (see the gateway log)"),
                Err(_) => break,
            }
        }
        let missing = total - got.len();
        let (a, b) = (
            percentile(&mut got, 50.0).unwrap_or(f64::NAN),
            percentile(&mut got, 99.0).unwrap_or(f64::NAN),
        );
        note(
            "e2e",
            round,
            &format!(
                "{total} messages at {rate:.0}/s: p50 {a:.1} ms, p99 {b:.1} ms, {missing} missed"
            ),
        );
        if let Round::Measured(_) = round {
            p50.push(a);
            p99.push(b);
            missed += missing;
            rates.push(rate);
        }
    }
    reader.abort();
    let mut detail = json!({
        "target_rate": s.e2e_rate,
        "achieved_rate": rates,
        "seconds_per_run": s.e2e_secs,
        "sessions": SESSIONS,
    });
    if missed > 0 {
        detail["incomplete"] = json!(format!("{missed} messages never reached the SSE client"));
    }
    Ok(vec![
        Metric::new(
            "e2e_p50",
            "ms",
            Runs::new(p50),
            Target::Value(Bound::AtMost(30.0)),
        )
        .with_detail(detail.clone()),
        Metric::new(
            "e2e_p99",
            "ms",
            Runs::new(p99),
            Target::Value(Bound::AtMost(150.0)),
        )
        .with_detail(detail),
    ])
}

/// Injects `total` messages at `rate` per second; returns the achieved rate
/// and how many injections failed.
async fn inject(
    client: &reqwest::Client,
    sim: &Sim,
    injected: &Injected,
    prefix: &str,
    total: usize,
    rate: f64,
) -> anyhow::Result<(f64, usize)> {
    let url = format!("{}/_sim/spark/messages", sim.base);
    let start = tokio::time::Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    let mut failed = 0;
    for k in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate)).await;
        let text = format!("{prefix}{k}");
        let body = serde_json::to_value(SparkInject {
            customer_id: Some(format!("e2e-{}", k % SESSIONS)),
            customer_name: Some(format!("客户 {}", k % SESSIONS)),
            text: Some(text.clone()),
            ..SparkInject::default()
        })?;
        let req = client.post(&url).json(&body);
        injected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(text, Instant::now());
        calls.spawn(async move {
            let resp = req.send().await?;
            anyhow::ensure!(resp.status().is_success(), "inject: {}", resp.status());
            anyhow::Ok(())
        });
        while let Some(done) = calls.try_join_next() {
            failed += failure(done);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    while let Some(done) = calls.join_next().await {
        failed += failure(done);
    }
    let achieved = if elapsed > 0.0 {
        (total.saturating_sub(1)) as f64 / elapsed
    } else {
        rate
    };
    Ok((achieved, failed))
}

/// 1 (and a line on stderr) for a failed injection.
fn failure(done: Result<anyhow::Result<()>, tokio::task::JoinError>) -> usize {
    match done {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("  e2e: an injection failed: {e:#}");
            1
        }
        Err(e) => {
            eprintln!("  e2e: an injection task failed: {e}");
            1
        }
    }
}

/// Follows the SSE stream and reports each injected message's latency.
async fn read_stream(
    base: String,
    auth: String,
    cursor: String,
    injected: Injected,
    tx: mpsc::UnboundedSender<(String, f64)>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{base}/v1/events/stream?after={cursor}"))
        .header("Authorization", &auth)
        .send()
        .await?
        .error_for_status()?;
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("reading the SSE stream")?;
        let at = Instant::now();
        for e in parser.push(&chunk) {
            if e.event != "message.created" {
                continue;
            }
            let data: Value = serde_json::from_str(&e.data)?;
            let Some(text) = data["data"]["text"].as_str() else {
                continue;
            };
            let sent = injected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(text);
            if let Some(sent) = sent {
                let ms = at.duration_since(sent).as_secs_f64() * 1000.0;
                if tx.send((text.to_string(), ms)).is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

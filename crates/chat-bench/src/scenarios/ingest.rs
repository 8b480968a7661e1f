//! `ingest`: messages stored per second from the Spark simulator, against
//! the harness inserting the very same message rows itself.
//!
//! Gateway run: a fresh database, the simulator, the gateway with one Spark
//! account. Once the gateway's live poll is held, the simulator generates the
//! whole backlog in one step (`POST /_sim/spark/bulk`: messages dealt in turn
//! over new sessions) and hands it out at most [`ANSWER_MAX`] messages per
//! live answer, the next ones as soon as the previous are acked. The clock
//! starts when the backlog exists and stops when the simulator holds no
//! unacked message: the gateway acks a batch only after committing its
//! messages, session updates and events. The stored rows are then checked
//! (every message, every session, an event each) and read back. A run that
//! reaches the time cap (90 s; 60 s with `--quick`) is stopped by killing the
//! gateway: its rate is then the messages committed by then over the time
//! until the kill, and the baseline inserts exactly those rows, so a slow
//! gateway cannot stretch a full run past its budget.
//!
//! Baseline run: a fresh database with the same schema; the harness inserts
//! those read-back rows with multi-row `INSERT … ON CONFLICT (account,
//! external_id) DO NOTHING`, 100 rows a statement, over 8 connections at once
//! on PostgreSQL and one writer on SQLite (which allows only one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use serde_json::json;

use super::{note, post_json, Accounts, Ctx, Gateway, Round, Sim, SimSpec};
use crate::db::DbServer;
use crate::report::{Bound, Metric, Target};
use crate::rows::{insert_batched, read_messages, MessageRow};
use crate::stats::Runs;

/// Most messages per live answer: Spark's page size (history answers carry
/// at most 200).
pub const ANSWER_MAX: usize = 200;
/// Rows per baseline statement.
const BATCH: usize = 100;

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Metric>> {
    let s = &ctx.scale;
    let writers = match ctx.server {
        DbServer::Sqlite => 1,
        DbServer::Postgres { .. } => 8,
    };
    let mut gateway = Vec::new();
    let mut baseline = Vec::new();
    let mut seconds = Vec::new();
    let mut capped = Vec::new();
    for round in ctx.rounds() {
        let (messages, sessions) = match round {
            Round::Warmup => (s.ingest_messages / 10, (s.ingest_sessions / 10).max(1)),
            Round::Measured(_) => (s.ingest_messages, s.ingest_sessions),
        };
        let cap = Duration::from_secs_f64(s.ingest_cap_secs);
        let (elapsed, rows) = gateway_run(ctx, messages, sessions, cap).await?;
        let stored = rows.len();
        let rate = stored as f64 / elapsed.as_secs_f64();
        note(
            "ingest",
            round,
            &format!(
                "gateway stored {stored} of {messages} messages over {sessions} sessions in {:.2} s{}: {rate:.0} msg/s",
                elapsed.as_secs_f64(),
                if stored < messages { " (stopped at the time cap)" } else { "" }
            ),
        );
        if stored < messages {
            if let Round::Measured(_) = round {
                capped.push(format!(
                    "{stored} of {messages} in {:.0} s",
                    elapsed.as_secs_f64()
                ));
            }
        }
        let b = baseline_run(ctx, rows, writers).await?;
        let brate = stored as f64 / b.as_secs_f64();
        note(
            "ingest",
            round,
            &format!(
                "baseline inserted them in {:.2} s: {brate:.0} msg/s",
                b.as_secs_f64()
            ),
        );
        if let Round::Measured(_) = round {
            gateway.push(rate);
            baseline.push(brate);
            seconds.push(elapsed.as_secs_f64());
        }
    }
    let mut detail = json!({
        "messages": s.ingest_messages,
        "sessions": s.ingest_sessions,
        "answer_max": ANSWER_MAX,
        "gateway_seconds": seconds,
        "time_cap_seconds": s.ingest_cap_secs,
        "baseline_batch": BATCH,
        "baseline_writers": writers,
    });
    if !capped.is_empty() {
        detail["capped_runs"] = json!(capped);
    }
    Ok(vec![Metric::new(
        "ingest",
        "msg/s",
        Runs::new(gateway),
        Target::Ratio(Bound::AtLeast(0.5)),
    )
    .with_baseline(Runs::new(baseline))
    .with_detail(detail)])
}

/// One gateway run; returns the time it took to store everything (or, at
/// the time cap, the time until the gateway was stopped) and the rows it
/// stored.
async fn gateway_run(
    ctx: &Ctx,
    messages: usize,
    sessions: usize,
    cap: Duration,
) -> anyhow::Result<(Duration, Vec<MessageRow>)> {
    let db = ctx.fresh_db().await?;
    let result = async {
        let mut sim = Sim::start(
            ctx,
            SimSpec {
                all: false,
                batch_max: Some(ANSWER_MAX),
            },
        )
        .await?;
        let mut gw = Gateway::start(
            ctx,
            &db,
            &sim.base,
            Accounts::Spark,
            Duration::from_millis(20),
        )
        .await?;
        sim.wait_for_live_poll().await?;
        let report = post_json(
            &ctx.http,
            &format!("{}/_sim/spark/bulk", sim.base),
            None,
            &json!({"sessions": sessions, "messages": messages, "customer_prefix": "ingest-"}),
        )
        .await?;
        let t0 = Instant::now();
        ensure!(
            report["messages"].as_u64() == Some(messages as u64),
            "bulk answered {report}"
        );
        let mut last = (u64::MAX, Instant::now());
        let mut elapsed = None;
        loop {
            let pending = sim.spark_state().await?["pending"]
                .as_u64()
                .unwrap_or(u64::MAX);
            if pending == 0 {
                elapsed = Some(t0.elapsed());
                break;
            }
            if t0.elapsed() > cap {
                break;
            }
            if pending != last.0 {
                last = (pending, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(60) {
                bail!(
                    "ingest stalled with {pending} messages unacked; end of the gateway log:\n{}",
                    gw.proc().log_tail()
                );
            }
            gw.proc().ensure_running()?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // At the cap, the clock stops when the gateway is killed: what was
        // committed by then counts, an open transaction is lost.
        drop(gw);
        let elapsed = elapsed.unwrap_or_else(|| t0.elapsed());
        drop(sim);
        let pool = db.pool(2).await?;
        let stored = pool.count("messages").await?;
        let stored_sessions = pool.count("sessions").await?;
        let events = pool.count("events").await?;
        let complete = stored == messages as i64;
        ensure!(
            stored <= messages as i64
                && (stored_sessions == sessions as i64 || !complete)
                && stored_sessions <= sessions as i64,
            "the gateway stored {stored} messages and {stored_sessions} sessions, \
             expected {messages} and {sessions}"
        );
        ensure!(
            events >= stored + stored_sessions,
            "only {events} events for {stored} messages in {stored_sessions} new sessions"
        );
        let rows = read_messages(&pool).await?;
        ensure!(rows.len() as i64 == stored, "read back {} rows", rows.len());
        pool.close().await;
        Ok((elapsed, rows))
    }
    .await;
    db.cleanup().await?;
    result
}

/// One baseline run over `rows`; returns the time the inserts took.
async fn baseline_run(
    ctx: &Ctx,
    rows: Vec<MessageRow>,
    writers: usize,
) -> anyhow::Result<Duration> {
    let db = ctx.fresh_db().await?;
    let result = async {
        let pool = db.pool(writers as u32).await?;
        pool.warm(writers).await?;
        let rows = Arc::new(rows);
        let t = Instant::now();
        let inserted = insert_batched(&pool, rows.clone(), BATCH, writers).await?;
        let elapsed = t.elapsed();
        ensure!(
            inserted == rows.len() as u64,
            "baseline inserted {inserted} of {} rows",
            rows.len()
        );
        pool.close().await;
        Ok(elapsed)
    }
    .await;
    db.cleanup().await?;
    result
}

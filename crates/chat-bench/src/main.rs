//! `chat-bench`: measures the gateway's real work side by side with what the
//! same machine can do without it, in the same run, so the figures hold as
//! ratios on a noisy machine.
//!
//! ```text
//! cargo run --release -p chat-bench -- [--database-url URL] [--scenario NAME] [--quick]
//! ```
//!
//! The harness builds what it runs (`cargo build --release -p chat-gateway
//! -p provider-sim`) and starts `target/release/provider-sim` and
//! `target/release/chat-gateway serve` as separate child processes, each
//! scenario against a fresh database: a new SQLite file in a temporary
//! directory by default, or with `--database-url postgres://…` a new database
//! created on that server and dropped afterwards. Children are killed when
//! the harness ends, fails, panics or is interrupted.
//!
//! Every scenario runs a warm-up, then three measured runs (median, min and
//! max are reported); `--quick` scales everything down and runs each once.
//! Results go to the terminal and to `target/chat-bench/report.json`
//! (`report.md` holds the same table in Markdown).
//!
//! # Scenarios and their baselines
//!
//! Each baseline is written in the harness and does the same work the
//! gateway does for the figure (the same rows, the same SQL, the same JSON)
//! with no gateway in between.
//!
//! - `ingest`: the Spark simulator holds a backlog of messages (200k over
//!   2k sessions; `POST /_sim/spark/bulk`) and hands them out at most 200 per
//!   live answer (`--spark-live-batch-max`, the provider's page size), the
//!   next ones as soon as the gateway acks the previous: messages stored per
//!   second, from the backlog appearing until the simulator holds no unacked
//!   message (the gateway acks only what it committed: message, session and
//!   event rows; a run still going after 90 s is stopped and counts what was
//!   committed by then). Baseline: the very message rows that run stored, read back,
//!   inserted by the harness into a fresh database with the same schema as
//!   multi-row `INSERT … ON CONFLICT DO NOTHING` in batches of 100 over 8
//!   connections (SQLite: one writer). Target: ratio ≥ 0.5.
//! - `read`: 1M messages in 10k sessions written by the harness straight
//!   into the real schema (rows shaped as the Spark adapter stores them),
//!   then `GET /v1/sessions/{id}/messages?limit=50` for random sessions over
//!   64 concurrent connections for a fixed time: requests per second and
//!   p99. Baseline: a bare axum handler (`chat-bench serve-read-baseline`,
//!   its own process like the gateway) running the gateway's two queries
//!   (the session check, then the message page) through sqlx and answering
//!   the same JSON; the harness checks the two answers are equal before
//!   measuring. Targets: ratio ≥ 0.6 and p99 ≤ 2 × the baseline's p99.
//! - `fanout`: 10,000 concurrent `/v1/events` long polls (then, separately,
//!   10,000 SSE streams) wait on the feed; one message is injected into the
//!   Spark simulator; time from the injection until each waiter has its
//!   `message.created` (p99; the max is in the detail), and the gateway's
//!   peak `VmRSS` while they wait and receive. Targets: p99 ≤ 500 ms,
//!   RSS ≤ 256 MiB.
//! - `e2e`: messages injected into the Spark simulator at 1,000 per second;
//!   latency from the harness injecting a message to an SSE client of the
//!   same harness process receiving its `message.created` (p50 and p99).
//!   Targets: p50 ≤ 30 ms, p99 ≤ 150 ms.
//! - `send`: 2,000 `POST /v1/sessions/{id}/messages` at 32 concurrent
//!   callers, each followed to `delivery.status = sent` on the event feed
//!   (`message.updated`): sends per second and p99 accept-to-sent. Baseline:
//!   the same number of `/message/send` calls made straight to a simulator
//!   at the same concurrency. Target: ratio ≥ 0.5. When the gateway answers
//!   the send with 404 or 405 the scenario is reported as skipped.
//! - `footprint`: the gateway with three accounts (Spark, ccmessaging and
//!   Kchat simulators): time from spawning the process to `/readyz`
//!   answering 200 on a fresh database (migrations included), and `VmRSS`
//!   after a few idle seconds. Targets: ready ≤ 500 ms on SQLite,
//!   RSS ≤ 40 MiB.
//!
//! The crate's README says the same with the latest full table.

mod baseline;
mod db;
mod machine;
mod procs;
mod report;
mod rows;
mod scenarios;
mod sse;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::report::Report;
use crate::scenarios::{Ctx, Scale, Scenario};

/// Benchmark the gateway against baselines on this machine.
#[derive(Debug, Parser)]
#[command(name = "chat-bench", version, about)]
struct Args {
    /// PostgreSQL server to benchmark on (a fresh database is created per
    /// scenario and dropped after); default: SQLite files in a temp dir.
    #[arg(long)]
    database_url: Option<String>,
    /// Run only these scenarios (repeat or comma-separate): ingest, read,
    /// fanout, e2e, send, footprint.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// Scaled-down sizes, one run each, no speed assertions (CI smoke).
    #[arg(long)]
    quick: bool,
    /// Exit 1 when a target is missed (default: only harness failures).
    #[arg(long)]
    strict: bool,
    /// Skip `cargo build` (the binaries in the target directory are used as they are).
    #[arg(long)]
    no_build: bool,
    /// Internal commands.
    #[command(subcommand)]
    command: Option<Internal>,
}

/// Commands the harness starts itself with.
#[derive(Debug, Subcommand)]
enum Internal {
    /// Serve the `read` baseline: a bare handler over the same SQL.
    #[command(hide = true)]
    ServeReadBaseline {
        /// Database to read.
        #[arg(long)]
        database_url: String,
        /// Address to listen on.
        #[arg(long)]
        listen: String,
        /// Pool size (the gateway's default).
        #[arg(long, default_value_t = 16)]
        max_connections: u32,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Internal::ServeReadBaseline {
        database_url,
        listen,
        max_connections,
    }) = args.command
    {
        return match baseline::serve(&database_url, &listen, max_connections).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // The bench runs in its own task so a panic or Ctrl-C drops its state
    // (killing the child processes) before the databases it made are removed.
    let strict = args.strict;
    let mut task = tokio::spawn(bench(args));
    let outcome = tokio::select! {
        r = &mut task => match r {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(anyhow::anyhow!("the harness panicked")),
            Err(e) => Err(anyhow::anyhow!("the harness task failed: {e}")),
        },
        _ = tokio::signal::ctrl_c() => {
            task.abort();
            // Waiting for the aborted task means its child guards were dropped.
            let _ = task.await;
            Err(anyhow::anyhow!("interrupted"))
        }
    };
    db::drop_leftovers().await;
    match outcome {
        Ok(report) => {
            if report.harness_failed() {
                eprintln!("error: at least one scenario could not be measured (see above)");
                ExitCode::FAILURE
            } else if strict && report.any_missed() {
                eprintln!("--strict: at least one target was missed");
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> anyhow::Result<Report> {
    let started = std::time::Instant::now();
    let nofile = procs::raise_nofile_limit();
    let target_dir = procs::target_dir().context("cannot find the cargo target directory")?;
    if !args.no_build {
        procs::build_children().context("building chat-gateway and provider-sim")?;
    }
    let bins = procs::Bins::locate(&target_dir)?;
    let work = target_dir.join("chat-bench");
    let logs = work.join("logs");
    if logs.exists() {
        std::fs::remove_dir_all(&logs).with_context(|| format!("clearing {}", logs.display()))?;
    }
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    let server = match &args.database_url {
        None => db::DbServer::Sqlite,
        Some(url) => db::DbServer::postgres(url).await?,
    };
    let scale = if args.quick {
        Scale::quick()
    } else {
        Scale::full()
    };
    let scenarios = if args.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenario.clone()
    };
    let machine = machine::Machine::read();
    println!("chat-bench: {}", machine.describe());
    println!(
        "database: {}   mode: {}   open files: {nofile}   logs: {}",
        server.name(),
        if args.quick { "quick" } else { "full" },
        logs.display()
    );
    let key = procs::ApiKey::generate(&bins.gateway)?;
    let ctx = Ctx::new(bins, server, scale, key, logs)?;
    let mut report = Report::new(machine, ctx.server.name(), args.quick);
    for scenario in scenarios {
        println!("\n== {} ==", scenario.name());
        let t = std::time::Instant::now();
        match scenarios::run(&ctx, scenario).await {
            Ok(metrics) => report.add(scenario, metrics),
            Err(e) => {
                eprintln!("{} failed: {e:#}", scenario.name());
                report.add_error(scenario, &format!("{e:#}"));
            }
        }
        println!(
            "({} took {:.0} s)",
            scenario.name(),
            t.elapsed().as_secs_f64()
        );
    }
    report.finish(started.elapsed());
    println!("\n{}", report.table());
    let path: PathBuf = work.join("report.json");
    report.write(&path, &work.join("report.md"))?;
    println!("report: {}", path.display());
    Ok(report)
}

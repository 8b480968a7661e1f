//! `provider-sim`: serves one or all provider simulators until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use provider_sim::{
    start, HeaderCredential, HistoryOptions, Script, SimOptions, SimProvider, TrafficOptions,
    DEMO_CCM_USERS,
};

/// Simulates the Spark, ccmessaging and Kchat chat provider APIs.
#[derive(Parser, Debug)]
#[command(name = "provider-sim", version)]
struct Args {
    /// spark, ccmessaging, kchat or all.
    #[arg(long)]
    provider: SimProvider,
    /// Address to listen on (default: spark 127.0.0.1:9101, ccmessaging
    /// 9102, kchat 9103, all 9100).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A script file (TOML, or JSON when it ends in .json).
    #[arg(long)]
    script: Option<PathBuf>,
    /// How long a live Spark query is held, in seconds.
    #[arg(long, default_value_t = 25)]
    hold_secs: u64,
    /// Spark: at most this many entries per live answer (default: every
    /// unacked message at once, as the provider does).
    #[arg(long)]
    spark_live_batch_max: Option<usize>,
    /// Time zone of provider-local times.
    #[arg(long, default_value = "Asia/Shanghai")]
    timezone: String,
    /// Seed for every random choice, to repeat a run.
    #[arg(long)]
    seed: Option<u64>,
    /// Seed this many days of finished conversations at start.
    #[arg(long)]
    history_days: Option<u32>,
    /// Generate lively traffic at this many events per second per provider.
    #[arg(long)]
    traffic: Option<f64>,
    /// Spark: the header every call must carry, as `Name: value`; `none`
    /// accepts any call.
    #[arg(long, default_value = "Authorization: Token demo")]
    spark_auth: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,provider_sim=info".into()),
        )
        .init();
    let args = Args::parse();

    let mut opts = SimOptions {
        spark_hold: Duration::from_secs(args.hold_secs),
        spark_live_batch_max: args.spark_live_batch_max,
        time_zone: args
            .timezone
            .parse()
            .map_err(|e| anyhow::anyhow!("--timezone {}: {e}", args.timezone))?,
        seed: args.seed,
        ..SimOptions::default()
    };
    opts.spark_auth = if args.spark_auth.eq_ignore_ascii_case("none") {
        None
    } else {
        let (name, value) = args
            .spark_auth
            .split_once(':')
            .context("--spark-auth is `Name: value` or `none`")?;
        Some(HeaderCredential {
            name: name.trim().to_string(),
            value: value.trim().to_string(),
        })
    };
    if let Some(path) = &args.script {
        opts.script = Some(Script::from_file(path)?);
    }
    opts.history = args.history_days.map(|days| HistoryOptions {
        days,
        ..HistoryOptions::default()
    });
    let listen = args.listen.unwrap_or(args.provider.default_listen());
    let credentials = opts.clone();
    let server = start(args.provider, listen, opts)
        .await
        .with_context(|| format!("starting the {} simulator", args.provider))?;
    let control = server.control();

    if let Some(rate) = args.traffic {
        control.spawn_traffic(TrafficOptions {
            events_per_second: rate,
            ..TrafficOptions::default()
        })?;
        tracing::info!(rate, "lively traffic started");
    }

    let base = server.base_url().to_string();
    println!("provider-sim ({}) listening on {base}", args.provider);
    if args.provider.includes(SimProvider::Spark) {
        match &credentials.spark_auth {
            Some(h) => println!(
                "  spark:       base_url = \"{base}\"  headers = {{ {} = \"{}\" }}",
                h.name, h.value
            ),
            None => println!("  spark:       base_url = \"{base}\"  (no auth)"),
        }
    }
    if args.provider.includes(SimProvider::Ccmessaging) {
        let c = &credentials.ccm;
        println!(
            "  ccmessaging: base_url = \"{base}\"  app_key = \"{}\"  app_secret = \"{}\"  channel_id = \"{}\"",
            c.app_key, c.app_secret, c.channel_id
        );
        println!("               customers = {DEMO_CCM_USERS:?}");
    }
    if args.provider.includes(SimProvider::Kchat) {
        let k = &credentials.kchat;
        println!(
            "  kchat:       base_url = \"{base}\"  email = \"{}\"  api_token = \"{}\"  password = \"{}\"",
            k.email, k.api_token, k.password
        );
    }
    println!("  control:     {base}/_sim/state");

    stop_signal().await?;
    tracing::info!("stopping");
    server.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM where there is one.
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

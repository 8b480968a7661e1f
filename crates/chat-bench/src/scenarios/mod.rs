//! The scenarios, their sizes, and the pieces they share: the simulator and
//! gateway processes and the HTTP calls made to them.

mod e2e;
mod fanout;
mod footprint;
mod ingest;
mod read;
mod send;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::db::{DbServer, FreshDb};
use crate::procs::{free_port, wait_ok, ApiKey, Bins, ChildGuard};
use crate::report::Metric;

/// A scenario, by its command-line name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Messages stored per second from the Spark simulator.
    Ingest,
    /// `GET /v1/sessions/{id}/messages` at 64 connections.
    Read,
    /// 10,000 feed waiters, one message.
    Fanout,
    /// Injection to SSE delivery at a steady rate.
    E2e,
    /// Sends through to `sent`.
    Send,
    /// Idle memory and time to ready.
    Footprint,
}

impl Scenario {
    /// Every scenario, in the order a full run takes them.
    pub const ALL: [Scenario; 6] = [
        Scenario::Footprint,
        Scenario::Ingest,
        Scenario::Read,
        Scenario::Fanout,
        Scenario::E2e,
        Scenario::Send,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ingest => "ingest",
            Scenario::Read => "read",
            Scenario::Fanout => "fanout",
            Scenario::E2e => "e2e",
            Scenario::Send => "send",
            Scenario::Footprint => "footprint",
        }
    }
}

/// Sizes and repetitions.
#[derive(Debug, Clone)]
pub struct Scale {
    /// Measured runs per scenario.
    pub runs: usize,
    /// Whether a discarded warm-up run comes first.
    pub warmup: bool,
    /// `ingest`: messages and sessions.
    pub ingest_messages: usize,
    /// `ingest`: sessions.
    pub ingest_sessions: usize,
    /// `ingest`: a gateway run stops after this long; its rate is then what
    /// it stored by then (keeps a full run bounded however slow it is).
    pub ingest_cap_secs: f64,
    /// `read`: messages seeded.
    pub read_messages: usize,
    /// `read`: sessions seeded.
    pub read_sessions: usize,
    /// `read`: seconds per measured run.
    pub read_secs: f64,
    /// `fanout`: concurrent waiters.
    pub fanout_waiters: usize,
    /// `e2e`: messages per second.
    pub e2e_rate: f64,
    /// `e2e`: seconds per run.
    pub e2e_secs: f64,
    /// `send`: sends per run.
    pub send_count: usize,
    /// `footprint`: idle seconds before RSS is read.
    pub footprint_idle_secs: f64,
}

impl Scale {
    /// The sizes of the issue.
    pub fn full() -> Scale {
        Scale {
            runs: 3,
            warmup: true,
            ingest_messages: 200_000,
            ingest_sessions: 2_000,
            ingest_cap_secs: 90.0,
            read_messages: 1_000_000,
            read_sessions: 10_000,
            read_secs: 10.0,
            fanout_waiters: 10_000,
            e2e_rate: 1_000.0,
            e2e_secs: 20.0,
            send_count: 2_000,
            footprint_idle_secs: 5.0,
        }
    }

    /// Scaled down, one run each: CI smoke, under three minutes.
    pub fn quick() -> Scale {
        Scale {
            runs: 1,
            warmup: false,
            ingest_messages: 20_000,
            ingest_sessions: 200,
            ingest_cap_secs: 60.0,
            read_messages: 100_000,
            read_sessions: 1_000,
            read_secs: 3.0,
            fanout_waiters: 1_000,
            e2e_rate: 200.0,
            e2e_secs: 10.0,
            send_count: 200,
            footprint_idle_secs: 2.0,
        }
    }
}

/// What every scenario gets.
#[derive(Debug)]
pub struct Ctx {
    /// The executables.
    pub bins: Bins,
    /// Where fresh databases come from.
    pub server: DbServer,
    /// Sizes.
    pub scale: Scale,
    /// The gateway's API key.
    pub key: ApiKey,
    /// Child logs and configs.
    pub logs: PathBuf,
    /// A client for control calls (simulator, metrics, readiness).
    pub http: reqwest::Client,
}

impl Ctx {
    /// Puts it together.
    pub fn new(
        bins: Bins,
        server: DbServer,
        scale: Scale,
        key: ApiKey,
        logs: PathBuf,
    ) -> anyhow::Result<Ctx> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Ctx {
            bins,
            server,
            scale,
            key,
            logs,
            http,
        })
    }

    /// A fresh, migrated database.
    pub async fn fresh_db(&self) -> anyhow::Result<FreshDb> {
        FreshDb::create(&self.server, &self.bins.gateway).await
    }

    /// How many measured runs, plus the warm-up.
    pub fn rounds(&self) -> impl Iterator<Item = Round> {
        let warmup = self.scale.warmup.then_some(Round::Warmup);
        warmup
            .into_iter()
            .chain((0..self.scale.runs).map(Round::Measured))
    }
}

/// A warm-up (discarded) or the n-th measured run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Discarded.
    Warmup,
    /// Kept.
    Measured(usize),
}

impl std::fmt::Display for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Round::Warmup => f.write_str("warm-up"),
            Round::Measured(i) => write!(f, "run {}", i + 1),
        }
    }
}

/// Runs one scenario.
pub async fn run(ctx: &Ctx, scenario: Scenario) -> anyhow::Result<Vec<Metric>> {
    match scenario {
        Scenario::Ingest => ingest::run(ctx).await,
        Scenario::Read => read::run(ctx).await,
        Scenario::Fanout => fanout::run(ctx).await,
        Scenario::E2e => e2e::run(ctx).await,
        Scenario::Send => send::run(ctx).await,
        Scenario::Footprint => footprint::run(ctx).await,
    }
}

// ---------------------------------------------------------------------------
// The simulator.

/// The Spark account name the gateway is configured with.
pub const SPARK_ACCOUNT: &str = crate::rows::SEED_ACCOUNT;
const SPARK_AUTH: &str = "Authorization: Token demo";

/// A running `provider-sim`.
#[derive(Debug)]
pub struct Sim {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    proc: ChildGuard,
    http: reqwest::Client,
}

/// How to start a simulator.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimSpec {
    /// All three providers (else Spark only).
    pub all: bool,
    /// `--spark-live-batch-max`.
    pub batch_max: Option<usize>,
}

impl Sim {
    /// Starts `provider-sim` and waits for its control API.
    pub async fn start(ctx: &Ctx, spec: SimSpec) -> anyhow::Result<Sim> {
        let port = free_port()?;
        let mut cmd = Command::new(&ctx.bins.sim);
        cmd.args([
            "--provider",
            if spec.all { "all" } else { "spark" },
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--hold-secs",
            "25",
            "--spark-auth",
            SPARK_AUTH,
        ]);
        if let Some(n) = spec.batch_max {
            cmd.args(["--spark-live-batch-max", &n.to_string()]);
        }
        let mut proc = ChildGuard::spawn("provider-sim", &mut cmd, &ctx.logs)?;
        let base = format!("http://127.0.0.1:{port}");
        wait_ok(
            &ctx.http,
            &format!("{base}/_sim/state"),
            &mut proc,
            Duration::from_secs(20),
            Duration::from_millis(10),
        )
        .await?;
        Ok(Sim {
            base,
            proc,
            http: ctx.http.clone(),
        })
    }

    /// `GET /_sim/state`'s Spark part.
    pub async fn spark_state(&self) -> anyhow::Result<Value> {
        let v = get_json(&self.http, &format!("{}/_sim/state", self.base), None).await?;
        Ok(v["spark"].clone())
    }

    /// Injects one message (`POST /_sim/spark/messages`).
    pub async fn inject(&self, body: &provider_sim::SparkInject) -> anyhow::Result<Value> {
        post_json(
            &self.http,
            &format!("{}/_sim/spark/messages", self.base),
            None,
            &serde_json::to_value(body)?,
        )
        .await
    }

    /// Waits until the gateway's live long poll has reached the simulator.
    pub async fn wait_for_live_poll(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.spark_state().await?["live_queries"].as_u64() >= Some(1) {
                return Ok(());
            }
            self.proc.ensure_running()?;
            if Instant::now() > deadline {
                bail!("the gateway never polled the Spark simulator");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------------------
// The gateway.

/// Which accounts the gateway is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounts {
    /// One Spark account.
    Spark,
    /// Spark, ccmessaging and Kchat (the simulator must serve `all`).
    Three,
}

/// The gateway's config file for this harness.
pub fn gateway_config(listen: &str, sim: &str, key: &ApiKey, accounts: Accounts) -> String {
    let mut text = format!(
        r#"[server]
listen = "{listen}"

[[api_keys]]
name = "chat-bench"
sha256 = "{sha}"
scopes = ["read", "write", "admin"]

[[accounts]]
name = "{SPARK_ACCOUNT}"
provider = "spark"
base_url = "{sim}"
timezone = "Asia/Shanghai"
headers = {{ Authorization = "Token demo" }}
"#,
        sha = key.sha256
    );
    if accounts == Accounts::Three {
        let defaults = provider_sim::SimOptions::default();
        let customers = provider_sim::DEMO_CCM_USERS
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!(
            r#"
[[accounts]]
name = "ccmessaging-bench"
provider = "ccmessaging"
base_url = "{sim}"
app_key = "{app_key}"
app_secret = "{app_secret}"
channel_id = "{channel_id}"
customers = [{customers}]

[[accounts]]
name = "kchat-bench"
provider = "kchat"
base_url = "{sim}"
email = "{email}"
api_token = "{token}"
timezone = "Asia/Shanghai"
"#,
            app_key = defaults.ccm.app_key,
            app_secret = defaults.ccm.app_secret,
            channel_id = defaults.ccm.channel_id,
            email = defaults.kchat.email,
            token = defaults.kchat.api_token,
        ));
    }
    text
}

/// A running `chat-gateway serve`.
#[derive(Debug)]
pub struct Gateway {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The `Authorization` header value.
    pub auth: String,
    proc: ChildGuard,
    http: reqwest::Client,
    /// When the process answered `/readyz` 200.
    pub ready_at: Instant,
}

impl Gateway {
    /// Starts the gateway on `db` against the simulator at `sim` and waits
    /// for `/readyz`. `poll` is how often readiness is asked.
    pub async fn start(
        ctx: &Ctx,
        db: &FreshDb,
        sim: &str,
        accounts: Accounts,
        poll: Duration,
    ) -> anyhow::Result<Gateway> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let config: PathBuf = ctx.logs.join(format!("gateway-{port}.toml"));
        std::fs::write(&config, gateway_config(&listen, sim, &ctx.key, accounts))
            .with_context(|| format!("writing {}", config.display()))?;
        let mut cmd = Command::new(&ctx.bins.gateway);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--listen", &listen, "--database-url", &db.url])
            .current_dir(&ctx.logs);
        let mut proc = ChildGuard::spawn("chat-gateway", &mut cmd, &ctx.logs)?;
        let base = format!("http://{listen}");
        let ready_at = wait_ok(
            &ctx.http,
            &format!("{base}/readyz"),
            &mut proc,
            Duration::from_secs(60),
            poll,
        )
        .await?;
        Ok(Gateway {
            base,
            auth: format!("Bearer {}", ctx.key.key),
            proc,
            http: ctx.http.clone(),
            ready_at,
        })
    }

    /// The process.
    pub fn proc(&mut self) -> &mut ChildGuard {
        &mut self.proc
    }

    /// `GET {path}` with the key; the JSON body of a 2xx answer.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        get_json(
            &self.http,
            &format!("{}{path}", self.base),
            Some(&self.auth),
        )
        .await
    }

    /// The newest event `seq` (`next_cursor` of `GET /v1/events?wait=0`).
    pub async fn cursor(&self) -> anyhow::Result<String> {
        // Without `after` the feed starts from now: the answer is empty and
        // its cursor is the newest seq.
        let v = self.get("/v1/events?wait=0").await?;
        v["next_cursor"]
            .as_str()
            .map(str::to_string)
            .context("no next_cursor in /v1/events")
    }

    /// The feed-waiters gauge from `/metrics`.
    pub async fn feed_waiters(&self) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        // `chatgw_feed_waiters N` (the registry's prefix may change).
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (name, value) = l.split_once(' ')?;
                name.ends_with("feed_waiters").then_some(value)
            })
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .context("no feed_waiters gauge in /metrics")
    }

    /// Waits until every Spark session the simulator made is stored.
    pub async fn wait_for_sessions(&mut self, count: usize) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self
                .get(&format!("/v1/sessions?account={SPARK_ACCOUNT}&limit=500"))
                .await?;
            let list = v["data"].as_array().cloned().unwrap_or_default();
            if list.len() >= count {
                return Ok(list);
            }
            self.proc.ensure_running()?;
            if Instant::now() > deadline {
                bail!(
                    "only {} of {count} sessions reached the gateway",
                    list.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP helpers.

/// `GET url`; the JSON body of a 2xx answer.
pub async fn get_json(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
) -> anyhow::Result<Value> {
    let mut req = http.get(url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("GET {url}: {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON: {text}"))
}

/// `POST url` with a JSON body; the JSON body of a 2xx answer.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    body: &Value,
) -> anyhow::Result<Value> {
    let mut req = http.post(url).json(body);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("POST {url}: {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("POST {url}: not JSON: {text}"))
}

/// Prints a progress line.
pub fn note(scenario: &str, round: Round, what: &str) {
    println!("  {scenario} {round}: {what}");
}

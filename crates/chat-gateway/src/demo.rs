//! `chat-gateway demo`: the gateway against built-in simulators of all three
//! providers, with a week of history and lively scripted traffic, on an
//! embedded database. Loopback only, no keys; for trying the API, not for
//! production.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use provider_sim::{HistoryOptions, SimOptions, SimProvider, TrafficOptions};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::server::{self, RunOptions};

/// The folder holding the default demo database for the demo serving on
/// `port`. The demo owns it while it holds the port: a second demo cannot
/// bind the same port, so it never reaches this folder, and one on another
/// port uses a folder of its own.
pub fn demo_dir(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("chat-gateway-demo-{port}"))
}

/// The accounts `demo` configures against simulators at `sim`.
pub fn demo_config(sim: &str) -> String {
    let customers = provider_sim::DEMO_CCM_USERS
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let defaults = SimOptions::default();
    let (ccm, kchat) = (defaults.ccm, defaults.kchat);
    let spark_headers = defaults
        .spark_auth
        .map(|h| format!("headers = {{ {} = \"{}\" }}", h.name, h.value))
        .unwrap_or_default();
    format!(
        r#"
[[accounts]]
name = "spark-demo"
provider = "spark"
base_url = "{sim}"
timezone = "Asia/Shanghai"
{spark_headers}

[[accounts]]
name = "ccmessaging-demo"
provider = "ccmessaging"
base_url = "{sim}"
app_key = "{app_key}"
app_secret = "{app_secret}"
channel_id = "{channel_id}"
customers = [{customers}]
poll_interval_secs = 3

[[accounts]]
name = "kchat-demo"
provider = "kchat"
base_url = "{sim}"
email = "{email}"
api_token = "{token}"
timezone = "Asia/Shanghai"
poll_interval_secs = 3
"#,
        app_key = ccm.app_key,
        app_secret = ccm.app_secret,
        channel_id = ccm.channel_id,
        email = kchat.email,
        token = kchat.api_token,
    )
}

/// A new, empty SQLite database in [`demo_dir`] (the simulators' ids are
/// fresh on every run, so an earlier run's rows must not meet them); its URL.
fn fresh_demo_database(port: u16) -> anyhow::Result<String> {
    let dir = demo_dir(port);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the demo folder {}", dir.display()))?;
    let file = dir.join("demo.db");
    for suffix in ["", "-wal", "-shm"] {
        let mut path = file.clone().into_os_string();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot remove an earlier demo database {}", file.display())
                })
            }
        }
    }
    Ok(format!("sqlite://{}?mode=rwc", file.display()))
}

/// Runs simulators and gateway until SIGINT/SIGTERM.
///
/// The gateway's port is bound first, before any file is touched, so a
/// second demo on the same port fails without harming the first.
pub async fn run(listen: Option<String>, database_url: Option<String>) -> anyhow::Result<()> {
    let listen = listen.unwrap_or_else(|| crate::config::DEFAULT_LISTEN.to_string());
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| {
        format!("cannot listen on {listen} (is another demo running there? try --listen 127.0.0.1:0)")
    })?;
    let addr = listener.local_addr()?;
    // The demo has no keys: refuse a non-loopback address before any file.
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the demo has no API keys, so it serves on loopback addresses only, not {addr}"
    );
    let (database_url, db_note) = match database_url {
        Some(url) => (url, ""),
        None => (
            fresh_demo_database(addr.port())?,
            "   (its own folder; emptied when a demo next starts on this port)",
        ),
    };

    let sim_addr: SocketAddr = ([127, 0, 0, 1], 9100).into();
    let sim = match provider_sim::start(SimProvider::All, sim_addr, SimOptions::default()).await {
        Ok(s) => s,
        Err(_) => provider_sim::start(
            SimProvider::All,
            ([127, 0, 0, 1], 0).into(),
            SimOptions::default(),
        )
        .await
        .context("cannot start the provider simulators")?,
    };
    let control = sim.control();
    control
        .seed_history(HistoryOptions {
            days: 6,
            conversations_per_day: 4,
            ..Default::default()
        })
        .context("cannot seed simulator history")?;
    let traffic = control
        .spawn_traffic(TrafficOptions {
            events_per_second: 2.0,
            ..Default::default()
        })
        .context("cannot start simulated traffic")?;

    let mut config = Config::parse(&demo_config(sim.base_url())).context("demo configuration")?;
    config.server.listen = listener.local_addr()?.to_string();
    config.database.url = database_url;
    config.check_addresses()?;
    let base = format!("http://{}", listener.local_addr()?);
    println!(
        "\nchat-gateway demo\n\
         \n  gateway     {base}   (API docs: {base}/docs)\
         \n  console     {base}/console\
         \n  simulators  {sim}   (spark, ccmessaging, kchat; control API under /_sim/)\
         \n  database    {db}{db_note}\
         \n\nTry:\
         \n  curl -s '{base}/v1/accounts'\
         \n  curl -s '{base}/v1/sessions?limit=5'\
         \n  curl -s '{base}/v1/messages?q=%E9%80%80%E6%AC%BE'     # q=退款\
         \n  curl -s '{base}/v1/events?after=0&limit=5'\
         \n  curl -sN '{base}/v1/events/stream'\
         \n\nCtrl-C stops.\n",
        sim = sim.base_url(),
        db = crate::store::sql_redact(&config.database.url),
    );
    let token = CancellationToken::new();
    server::cancel_on_signals(token.clone());
    let result = server::run(config, listener, token, RunOptions::default()).await;
    traffic.stop();
    sim.shutdown().await;
    result
}

//! `chat-gateway demo`: the gateway against built-in simulators of all three
//! providers, with a week of history and lively scripted traffic, on an
//! embedded database. Loopback only, no keys; for trying the API, not for
//! production.

use std::net::SocketAddr;

use anyhow::Context as _;
use provider_sim::{HistoryOptions, SimOptions, SimProvider, TrafficOptions};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::server::{self, RunOptions};

/// The demo's own database file, recreated on every run so the simulators'
/// fresh ids never meet an earlier run's rows.
pub const DEMO_DATABASE_URL: &str = "sqlite://chat-gateway-demo.db?mode=rwc";

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

/// Runs simulators and gateway until SIGINT/SIGTERM.
pub async fn run(listen: Option<String>, database_url: Option<String>) -> anyhow::Result<()> {
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
    config.server.listen = listen.unwrap_or_else(|| crate::config::DEFAULT_LISTEN.to_string());
    let fresh_default = database_url.is_none();
    config.database.url = database_url.unwrap_or_else(|| DEMO_DATABASE_URL.to_string());
    config.check_addresses()?;
    if fresh_default {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("chat-gateway-demo.db{suffix}"));
        }
    }
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!(
        "\nchat-gateway demo\n\
         \n  gateway     {base}   (API docs: {base}/docs)\
         \n  console     {base}/console\
         \n  simulators  {sim}   (spark, ccmessaging, kchat; control API under /_sim/)\
         \n  database    {db}\
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

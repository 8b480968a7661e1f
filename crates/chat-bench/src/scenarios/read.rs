//! `read`: `GET /v1/sessions/{id}/messages?limit=50` for random sessions at
//! 64 concurrent connections, against a bare handler running the same SQL.
//!
//! The harness seeds one fresh database straight through SQL: sessions and
//! their messages shaped as the Spark adapter stores them (customer and
//! agent taking turns, the provider's raw JSON kept), 1M messages over 10k
//! sessions in a full run. The gateway (with its Spark account, idle) and the
//! baseline server (`chat-bench serve-read-baseline`, same pool size) both
//! serve that database. Before measuring, the harness checks that both give
//! byte-for-byte equal JSON for a few sessions and both answer 404 for an
//! unknown one. Then, after a warm-up, each run loads the baseline and then
//! the gateway for the same fixed time from the same load generator: 64
//! tasks, one keep-alive connection each, a uniformly random seeded session
//! per request, every answer read to the end and checked for 200.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{note, Accounts, Ctx, Gateway, Round, Sim, SimSpec};
use crate::db::{FreshDb, Pool};
use crate::procs::{free_port, wait_ok, ChildGuard};
use crate::report::{Bound, Metric, Target};
use crate::rows::seed;
use crate::stats::{percentile, Runs};

/// Concurrent connections.
const CONNECTIONS: usize = 64;
/// Page size asked for.
const LIMIT: usize = 50;

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Metric>> {
    let db = ctx.fresh_db().await?;
    let result = measure(ctx, &db).await;
    db.cleanup().await?;
    result
}

/// The baseline server process.
struct Baseline {
    base: String,
    _proc: ChildGuard,
}

impl Baseline {
    async fn start(ctx: &Ctx, db: &FreshDb) -> anyhow::Result<Baseline> {
        let port = free_port()?;
        let mut cmd = std::process::Command::new(&ctx.bins.bench);
        cmd.args([
            "serve-read-baseline",
            "--database-url",
            &db.url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--max-connections",
            "16",
        ]);
        let mut proc = ChildGuard::spawn("read-baseline", &mut cmd, &ctx.logs)?;
        let base = format!("http://127.0.0.1:{port}");
        wait_ok(
            &ctx.http,
            &format!("{base}/readyz"),
            &mut proc,
            Duration::from_secs(30),
            Duration::from_millis(10),
        )
        .await?;
        Ok(Baseline { base, _proc: proc })
    }
}

async fn measure(ctx: &Ctx, db: &FreshDb) -> anyhow::Result<Vec<Metric>> {
    let s = &ctx.scale;
    let per_session = (s.read_messages / s.read_sessions).max(1);
    let pool = db.pool(8).await?;
    let t = Instant::now();
    let ids = seed(&pool, s.read_sessions, per_session).await?;
    if let Pool::Postgres(p) = &pool {
        // What autovacuum would have done on a live server by now.
        sqlx::query("ANALYZE").execute(p).await?;
    }
    let seeded = pool.count("messages").await?;
    pool.close().await;
    ensure!(
        seeded == (s.read_sessions * per_session) as i64,
        "seeded {seeded} messages"
    );
    println!(
        "  read: seeded {seeded} messages in {} sessions in {:.1} s",
        ids.len(),
        t.elapsed().as_secs_f64()
    );
    let ids = Arc::new(ids);

    let sim = Sim::start(ctx, SimSpec::default()).await?;
    let gw = Gateway::start(
        ctx,
        db,
        &sim.base,
        Accounts::Spark,
        Duration::from_millis(20),
    )
    .await?;
    let baseline = Baseline::start(ctx, db).await?;
    same_answers(ctx, &gw, &baseline.base, &ids).await?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut rates = (Vec::new(), Vec::new());
    let mut p99s = (Vec::new(), Vec::new());
    let mut requests = (Vec::new(), Vec::new());
    let mut errors = (0, 0);
    // A short warm-up even in a quick run: connections, caches, allocators.
    let rounds: Vec<Round> = if ctx.scale.warmup {
        ctx.rounds().collect()
    } else {
        std::iter::once(Round::Warmup).chain(ctx.rounds()).collect()
    };
    for round in rounds {
        let secs = match round {
            Round::Warmup => (s.read_secs / 3.0).max(1.0),
            Round::Measured(_) => s.read_secs,
        };
        let dur = Duration::from_secs_f64(secs);
        let b = hammer(&client, &baseline.base, None, &ids, dur).await?;
        let g = hammer(&client, &gw.base, Some(&gw.auth), &ids, dur).await?;
        note(
            "read",
            round,
            &format!(
                "baseline {:.0} req/s p99 {:.1} ms; gateway {:.0} req/s p99 {:.1} ms",
                b.rate(),
                b.p99(),
                g.rate(),
                g.p99()
            ),
        );
        if let Round::Measured(_) = round {
            rates.0.push(g.rate());
            rates.1.push(b.rate());
            p99s.0.push(g.p99());
            p99s.1.push(b.p99());
            requests.0.push(g.requests);
            requests.1.push(b.requests);
            errors.0 += g.errors;
            errors.1 += b.errors;
        }
    }
    let mut detail = json!({
        "messages": seeded,
        "sessions": ids.len(),
        "connections": CONNECTIONS,
        "limit": LIMIT,
        "seconds_per_run": s.read_secs,
        "gateway_requests": requests.0,
        "baseline_requests": requests.1,
        "gateway_errors": errors.0,
        "baseline_errors": errors.1,
    });
    if errors.0 + errors.1 > 0 {
        detail["incomplete"] = json!(format!(
            "{} gateway and {} baseline requests failed",
            errors.0, errors.1
        ));
    }
    Ok(vec![
        Metric::new(
            "read",
            "req/s",
            Runs::new(rates.0),
            Target::Ratio(Bound::AtLeast(0.6)),
        )
        .with_baseline(Runs::new(rates.1))
        .with_detail(detail),
        Metric::new(
            "read_p99",
            "ms",
            Runs::new(p99s.0),
            Target::Ratio(Bound::AtMost(2.0)),
        )
        .with_baseline(Runs::new(p99s.1))
        .with_detail(if errors.0 + errors.1 > 0 {
            json!({"incomplete": "some requests failed (see read)"})
        } else {
            json!({})
        }),
    ])
}

/// Both servers must answer the same JSON (the cursor included).
async fn same_answers(
    ctx: &Ctx,
    gw: &Gateway,
    baseline: &str,
    ids: &[String],
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut picks: Vec<&String> = (0..4).map(|_| &ids[rng.gen_range(0..ids.len())]).collect();
    if let Some(first) = ids.first() {
        picks.push(first);
    }
    for id in picks {
        let path = format!("/v1/sessions/{id}/messages?limit={LIMIT}");
        let g = ctx
            .http
            .get(format!("{}{path}", gw.base))
            .header("Authorization", &gw.auth)
            .send()
            .await?;
        let b = ctx.http.get(format!("{baseline}{path}")).send().await?;
        ensure!(
            g.status().as_u16() == 200 && b.status().as_u16() == 200,
            "{path}: gateway {}, baseline {}",
            g.status(),
            b.status()
        );
        let (g, b) = (g.bytes().await?, b.bytes().await?);
        let gv: serde_json::Value = serde_json::from_slice(&g).context("gateway JSON")?;
        let bv: serde_json::Value = serde_json::from_slice(&b).context("baseline JSON")?;
        if gv != bv {
            bail!(
                "the baseline's answer differs from the gateway's for {path}:\n gateway: {}\n baseline: {}",
                String::from_utf8_lossy(&g[..g.len().min(600)]),
                String::from_utf8_lossy(&b[..b.len().min(600)])
            );
        }
        ensure!(
            gv["data"].as_array().map(Vec::len) == Some(LIMIT) && gv["next_cursor"].is_string(),
            "{path}: expected a full page with a cursor"
        );
    }
    let path = "/v1/sessions/ses_nosuchsession/messages?limit=50";
    let g = ctx
        .http
        .get(format!("{}{path}", gw.base))
        .header("Authorization", &gw.auth)
        .send()
        .await?;
    let b = ctx.http.get(format!("{baseline}{path}")).send().await?;
    ensure!(
        g.status().as_u16() == 404 && b.status().as_u16() == 404,
        "unknown session: gateway {}, baseline {}",
        g.status(),
        b.status()
    );
    Ok(())
}

/// One load run's outcome.
struct Load {
    /// Answered 200 (only these count).
    requests: u64,
    /// Failed or answered otherwise.
    errors: u64,
    elapsed: Duration,
    latencies_ms: Vec<f64>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn p99(&self) -> f64 {
        percentile(&mut self.latencies_ms.clone(), 99.0).unwrap_or(f64::NAN)
    }
}

/// [`CONNECTIONS`] tasks asking for random sessions' first page until `dur`
/// has passed.
async fn hammer(
    client: &reqwest::Client,
    base: &str,
    auth: Option<&str>,
    ids: &Arc<Vec<String>>,
    dur: Duration,
) -> anyhow::Result<Load> {
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..CONNECTIONS {
        let (client, ids) = (client.clone(), ids.clone());
        let base = base.to_string();
        let auth = auth.map(str::to_string);
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(n as u64);
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            while Instant::now() < deadline {
                let id = &ids[rng.gen_range(0..ids.len())];
                let mut req = client.get(format!("{base}/v1/sessions/{id}/messages?limit={LIMIT}"));
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                let t = Instant::now();
                let outcome = match req.send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Ok(_) if status.as_u16() == 200 => Ok(()),
                            Ok(body) => Err(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(200)])
                            )),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => errors.push(e),
                }
            }
            (lat, errors)
        });
    }
    let mut latencies_ms = Vec::new();
    let mut errors = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (l, e) = r?;
        latencies_ms.extend(l);
        errors.extend(e);
    }
    let elapsed = start.elapsed();
    if let Some(e) = errors.first() {
        eprintln!(
            "  read: {base}: {} of {} requests failed, e.g. {e}",
            errors.len(),
            errors.len() + latencies_ms.len()
        );
    }
    Ok(Load {
        requests: latencies_ms.len() as u64,
        errors: errors.len() as u64,
        elapsed,
        latencies_ms,
    })
}

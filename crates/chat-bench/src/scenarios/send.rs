//! `send`: `POST /v1/sessions/{id}/messages` through to `delivery.status =
//! sent`, against calling the simulator's `/message/send` directly.
//!
//! Gateway run: a fresh database, the Spark simulator with [`SESSIONS`]
//! open conversations the gateway has stored, and one SSE client following
//! `message.updated`. [`CONCURRENCY`] callers send the run's messages
//! (`{"kind": "text", …}`) round-robin over the sessions; each 202 answer's
//! instant is the accept time, and the `message.updated` event whose
//! message has `delivery.status = sent` gives the sent time. Figures:
//! messages / (last sent - first request) and the p99 of accept-to-sent.
//!
//! Baseline run: a second simulator with the same number of conversations;
//! the same number of callers make the same number of `/message/send` calls
//! (the body the Spark adapter sends) and wait for each answer: calls /
//! elapsed, and the p99 call time.
//!
//! If the gateway answers the first send with 404 or 405 (a build without
//! the send endpoint) the scenario is reported as skipped, with the answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use futures_util::StreamExt as _;
use provider_sim::SparkInject;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{note, Accounts, Ctx, Gateway, Round, Sim, SimSpec};
use crate::db::FreshDb;
use crate::report::{Bound, Metric, Target};
use crate::sse::SseParser;
use crate::stats::{percentile, Runs};

/// Concurrent callers, for the gateway and the baseline alike.
const CONCURRENCY: usize = 32;
/// Conversations sent into.
const SESSIONS: usize = 20;

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Metric>> {
    let db = ctx.fresh_db().await?;
    let result = measure(ctx, &db).await;
    db.cleanup().await?;
    result
}

fn target() -> Target {
    Target::Ratio(Bound::AtLeast(0.5))
}

fn p99_target() -> Target {
    Target::Info("report only".into())
}

async fn measure(ctx: &Ctx, db: &FreshDb) -> anyhow::Result<Vec<Metric>> {
    let n = ctx.scale.send_count;
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
    for i in 0..SESSIONS {
        sim.inject(&customer_message(i)).await?;
    }
    let sessions: Vec<String> = gw
        .wait_for_sessions(SESSIONS)
        .await?
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    ensure!(!sessions.is_empty(), "no sessions to send into");

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .timeout(Duration::from_secs(30))
        .build()?;
    // Does this build take sends at all?
    let probe = client
        .post(format!("{}/v1/sessions/{}/messages", gw.base, sessions[0]))
        .header("Authorization", &gw.auth)
        .json(&json!({"kind": "text", "text": "probe"}))
        .send()
        .await?;
    let status = probe.status().as_u16();
    if status == 404 || status == 405 {
        let body: Value = probe.json().await.unwrap_or(Value::Null);
        let why = format!(
            "POST /v1/sessions/{{id}}/messages answered {status} ({}) on this build: no send endpoint",
            body["error"]["code"].as_str().unwrap_or("no error code")
        );
        println!("  send: skipped: {why}");
        return Ok(vec![
            Metric::skipped("send", "sends/s", target(), &why),
            Metric::skipped("send_p99", "ms", p99_target(), &why),
        ]);
    }
    ensure!(
        status == 202,
        "the probe send answered {status}: {}",
        probe.text().await.unwrap_or_default()
    );

    let (tx, rx) = mpsc::unbounded_channel();
    let follower = tokio::spawn(follow_sent(
        gw.base.clone(),
        gw.auth.clone(),
        gw.cursor().await?,
        tx,
    ));
    let mut sent = Sent {
        rx,
        at: HashMap::new(),
    };
    let direct = DirectSim::start(ctx).await?;

    let (mut rates, mut p99s, mut brates, mut bp99s) = (vec![], vec![], vec![], vec![]);
    for round in ctx.rounds() {
        let count = match round {
            Round::Warmup => (n / 10).max(CONCURRENCY),
            Round::Measured(_) => n,
        };
        let g = gateway_round(&client, (&gw.base, &gw.auth), &sessions, count, &mut sent).await?;
        let b = direct.round(&client, count).await?;
        note(
            "send",
            round,
            &format!(
                "gateway {:.0} sends/s (p99 accept-to-sent {:.1} ms); direct {:.0} sends/s (p99 {:.1} ms)",
                g.0, g.1, b.0, b.1
            ),
        );
        if let Round::Measured(_) = round {
            rates.push(g.0);
            p99s.push(g.1);
            brates.push(b.0);
            bp99s.push(b.1);
        }
    }
    follower.abort();
    let detail = json!({"sends": n, "concurrency": CONCURRENCY, "sessions": SESSIONS});
    Ok(vec![
        Metric::new("send", "sends/s", Runs::new(rates), target())
            .with_baseline(Runs::new(brates))
            .with_detail(detail),
        Metric::new("send_p99", "ms", Runs::new(p99s), p99_target())
            .with_baseline(Runs::new(bp99s)),
    ])
}

fn customer_message(i: usize) -> SparkInject {
    SparkInject {
        customer_id: Some(format!("send-{i}")),
        customer_name: Some(format!("客户 {i}")),
        text: Some("你好，我想咨询一下订单".into()),
        ..SparkInject::default()
    }
}

/// Sent instants by message id, as the follower reports them.
struct Sent {
    rx: mpsc::UnboundedReceiver<(String, Instant)>,
    at: HashMap<String, Instant>,
}

/// One gateway round: (sends per second, p99 accept-to-sent in ms).
async fn gateway_round(
    client: &reqwest::Client,
    (base, auth): (&str, &str),
    sessions: &[String],
    count: usize,
    sent: &mut Sent,
) -> anyhow::Result<(f64, f64)> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (client, next) = (client.clone(), next.clone());
        let (base, auth) = (base.to_string(), auth.to_string());
        let sessions = sessions.to_vec();
        tasks.spawn(async move {
            let mut accepted = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(accepted);
                }
                let session = &sessions[i % sessions.len()];
                let resp = client
                    .post(format!("{base}/v1/sessions/{session}/messages"))
                    .header("Authorization", &auth)
                    .json(&json!({"kind": "text", "text": format!("您好，这是第 {i} 条回复")}))
                    .send()
                    .await?;
                let status = resp.status().as_u16();
                let body: Value = resp.json().await?;
                let at = Instant::now();
                ensure!(status == 202, "send answered {status}: {body}");
                let id = body["data"]["id"]
                    .as_str()
                    .context("no data.id in the send answer")?;
                accepted.push((id.to_string(), at));
            }
        });
    }
    let mut accepted = Vec::with_capacity(count);
    while let Some(r) = tasks.join_next().await {
        accepted.extend(r??);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut waiting: std::collections::HashSet<&str> = accepted
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| !sent.at.contains_key(*id))
        .collect();
    while !waiting.is_empty() {
        match tokio::time::timeout_at(deadline, sent.rx.recv()).await {
            Ok(Some((id, at))) => {
                waiting.remove(id.as_str());
                sent.at.insert(id, at);
            }
            Ok(None) => bail!("the event stream ended"),
            Err(_) => bail!(
                "{} of {count} sends were not sent within 60 s",
                waiting.len()
            ),
        }
    }
    let mut last = start;
    let mut waits = Vec::with_capacity(count);
    for (id, acc) in &accepted {
        if let Some(s) = sent.at.get(id) {
            last = last.max(*s);
            waits.push(s.saturating_duration_since(*acc).as_secs_f64() * 1000.0);
        }
    }
    let rate = count as f64 / last.duration_since(start).as_secs_f64();
    Ok((rate, percentile(&mut waits, 99.0).unwrap_or(f64::NAN)))
}

/// Follows `message.updated` and reports messages that reached `sent`.
async fn follow_sent(
    base: String,
    auth: String,
    cursor: String,
    tx: mpsc::UnboundedSender<(String, Instant)>,
) -> anyhow::Result<()> {
    let resp = reqwest::Client::new()
        .get(format!(
            "{base}/v1/events/stream?after={cursor}&types=message.updated"
        ))
        .header("Authorization", &auth)
        .send()
        .await?
        .error_for_status()?;
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let at = Instant::now();
        for e in parser.push(&chunk) {
            let v: Value = serde_json::from_str(&e.data)?;
            if v["data"]["delivery"]["status"] == "sent" {
                if let Some(id) = v["data"]["id"].as_str() {
                    if tx.send((id.to_string(), at)).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
    Ok(())
}

/// The baseline's own simulator and conversations.
struct DirectSim {
    sim: Sim,
    /// (SessionId, customer id).
    sessions: Vec<(String, String)>,
}

impl DirectSim {
    async fn start(ctx: &Ctx) -> anyhow::Result<DirectSim> {
        let sim = Sim::start(ctx, SimSpec::default()).await?;
        let mut sessions = Vec::new();
        for i in 0..SESSIONS {
            let m = customer_message(i);
            let customer = m.customer_id.clone().unwrap_or_default();
            let v = sim.inject(&m).await?;
            let id = v["session_id"]
                .as_str()
                .context("no session_id from the simulator")?;
            sessions.push((id.to_string(), customer));
        }
        Ok(DirectSim { sim, sessions })
    }

    /// (calls per second, p99 call time in ms).
    async fn round(&self, client: &reqwest::Client, count: usize) -> anyhow::Result<(f64, f64)> {
        direct_round(client, &self.sim.base, &self.sessions, count).await
    }
}

/// `count` `/message/send` calls at [`CONCURRENCY`] callers, each waiting
/// for its answer: (calls per second, p99 call time in ms).
async fn direct_round(
    client: &reqwest::Client,
    base: &str,
    sessions: &[(String, String)],
    count: usize,
) -> anyhow::Result<(f64, f64)> {
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{base}/message/send");
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (client, next, url) = (client.clone(), next.clone(), url.clone());
        let sessions = sessions.to_vec();
        tasks.spawn(async move {
            let mut times = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(times);
                }
                let (session, customer) = &sessions[i % sessions.len()];
                let body = json!({
                    "SessionId": session,
                    "ToId": customer,
                    "ContentType": "0",
                    "Content": format!("您好，这是第 {i} 条回复"),
                    "CreateTime": crate::rows::spark_time(chrono::Utc::now().timestamp_micros()),
                });
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .header("Authorization", "Token demo")
                    .json(&body)
                    .send()
                    .await?;
                let v: Value = resp.json().await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                ensure!(v["Code"] == 0, "/message/send answered {v}");
            }
        });
    }
    let mut times = Vec::with_capacity(count);
    while let Some(r) = tasks.join_next().await {
        times.extend(r??);
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    Ok((rate, percentile(&mut times, 99.0).unwrap_or(f64::NAN)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Path, State};
    use axum::response::sse::{Event, Sse};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use std::convert::Infallible;
    use tokio::sync::broadcast;

    /// A stand-in with the contract's shapes: 202 with the pending message,
    /// then `message.updated` with `delivery.status = sent` on the stream.
    async fn fake_gateway() -> String {
        let (tx, _) = broadcast::channel::<String>(10_000);
        let app = Router::new()
            .route(
                "/v1/sessions/{id}/messages",
                post(
                    |State(tx): State<broadcast::Sender<String>>, Path(session): Path<String>| async move {
                        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
                        let sent = tx.clone();
                        let sent_id = id.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            let _ = sent.send(sent_id);
                        });
                        (
                            axum::http::StatusCode::ACCEPTED,
                            Json(json!({"data": {"id": id, "session_id": session,
                                "delivery": {"status": "pending", "attempts": 0, "last_error": null}}})),
                        )
                    },
                ),
            )
            .route(
                "/v1/events/stream",
                get(|State(tx): State<broadcast::Sender<String>>| async move {
                    let rx = tx.subscribe();
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        let id = rx.recv().await.ok()?;
                        let data = json!({"seq": "1", "type": "message.updated", "message_id": id,
                            "data": {"id": id, "delivery": {"status": "sent", "attempts": 1, "last_error": null}}});
                        let e = Event::default().event("message.updated").data(data.to_string());
                        Some((Ok::<_, Infallible>(e), rx))
                    });
                    Sse::new(stream)
                }),
            )
            .with_state(tx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    #[tokio::test]
    async fn a_direct_round_sends_through_the_simulator() {
        let server = provider_sim::start(
            provider_sim::SimProvider::Spark,
            "127.0.0.1:0".parse().unwrap(),
            provider_sim::SimOptions::default(),
        )
        .await
        .unwrap();
        let control = server.control();
        let sessions: Vec<(String, String)> = (0..3)
            .map(|i| {
                let m = customer_message(i);
                let customer = m.customer_id.clone().unwrap();
                (control.spark_inject(m).unwrap().session_id, customer)
            })
            .collect();
        let client = reqwest::Client::new();
        let (rate, p99) = direct_round(&client, server.base_url(), &sessions, 50)
            .await
            .unwrap();
        assert!(rate > 0.0 && p99 >= 0.0);
        let sends = control.spark_received().unwrap().sends;
        assert_eq!(sends.len(), 50);
        assert!(sends.iter().all(|s| s.code == 0), "{sends:?}");
    }

    #[tokio::test]
    async fn a_round_follows_every_send_to_sent() {
        let base = fake_gateway().await;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(follow_sent(base.clone(), "Bearer k".into(), "0".into(), tx));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut sent = Sent {
            rx,
            at: HashMap::new(),
        };
        let client = reqwest::Client::new();
        let sessions = vec!["ses_a".to_string(), "ses_b".to_string()];
        let (rate, p99) = gateway_round(&client, (&base, "Bearer k"), &sessions, 100, &mut sent)
            .await
            .unwrap();
        assert_eq!(sent.at.len(), 100);
        assert!(rate > 0.0 && rate.is_finite(), "{rate}");
        assert!((0.0..1000.0).contains(&p99), "{p99}");
    }
}

//! Signed webhooks end to end, on both backends: a receiver served here
//! verifies every delivery's Standard Webhooks signature and records what
//! it got; the tests check order per session after downtime, isolation of a
//! dead endpoint, the retry schedule, 410, restarts, replicas, the API's
//! client errors and the metrics.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chat_core::Role;
use chat_gateway::store::Store;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::fixtures::*;
use crate::on_both_backends;
use crate::support::{api_key, wait_until, Db, TestDb, TestGateway};

// ---------------------------------------------------------------- receiver

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Ok,
    Status(u16),
    StatusRetryAfter(u16, u64),
    /// Never answers (the gateway's 5 s timeout fires).
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) msg_id: String,
    pub(crate) seq: i64,
    pub(crate) session_id: String,
    pub(crate) account: String,
    pub(crate) event_type: String,
    pub(crate) at: Instant,
    pub(crate) answered: Answer,
    /// The delivery as sent: `webhook-timestamp`, `webhook-signature`, body.
    pub(crate) timestamp: String,
    pub(crate) signature: String,
    pub(crate) body: Bytes,
}

#[derive(Debug)]
pub(crate) struct Behaviour {
    /// Answers used first, one per request.
    pub(crate) script: VecDeque<Answer>,
    /// Then this.
    pub(crate) default: Answer,
    /// Requests for this account answer 500 until the instant passes.
    pub(crate) fail_account_until: Option<(String, Instant)>,
}

#[derive(Debug)]
pub(crate) struct ReceiverState {
    pub(crate) key: Mutex<Option<Vec<u8>>>,
    pub(crate) behaviour: Mutex<Behaviour>,
    pub(crate) hits: Mutex<Vec<Hit>>,
    pub(crate) bad_signatures: AtomicUsize,
}

/// A webhook endpoint on 127.0.0.1 that checks signatures.
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    pub(crate) state: Arc<ReceiverState>,
    pub(crate) task: Option<tokio::task::JoinHandle<()>>,
}

pub(crate) fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(format!("missing {name}"))
    };
    let id = h("webhook-id")?;
    let ts = h("webhook-timestamp")?;
    let sigs = h("webhook-signature")?;
    let ts_num: i64 = ts.parse().map_err(|_| "bad timestamp".to_string())?;
    if (chrono::Utc::now().timestamp() - ts_num).abs() > 300 {
        return Err("timestamp out of tolerance".into());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    if sigs.split(' ').any(|s| s == expected) {
        Ok(id)
    } else {
        Err(format!("signature mismatch: {sigs}"))
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn receive(
    axum::extract::State(state): axum::extract::State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = state.key.lock().unwrap().clone();
    let Some(key) = key else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let msg_id = match verify(&key, &headers, &body) {
        Ok(id) => id,
        Err(why) => {
            eprintln!(
                "receiver: {why} (id {:?}, body {})",
                headers.get("webhook-id"),
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(120)
                    .collect::<String>()
            );
            state.bad_signatures.fetch_add(1, Ordering::SeqCst);
            return StatusCode::UNAUTHORIZED.into_response();
        }
    };
    assert_eq!(
        headers.get("content-type").unwrap().to_str().unwrap(),
        "application/json"
    );
    let event: Value = serde_json::from_slice(&body).unwrap();
    let account = event["account"].as_str().unwrap().to_string();
    let answer = {
        let mut b = state.behaviour.lock().unwrap();
        match &b.fail_account_until {
            Some((acc, until)) if *acc == account && Instant::now() < *until => Answer::Status(500),
            _ => b.script.pop_front().unwrap_or(b.default),
        }
    };
    state.hits.lock().unwrap().push(Hit {
        msg_id,
        seq: event["seq"].as_str().unwrap().parse().unwrap(),
        session_id: event["session_id"].as_str().unwrap_or_default().to_string(),
        account,
        event_type: event["type"].as_str().unwrap().to_string(),
        at: Instant::now(),
        answered: answer,
        timestamp: header_text(&headers, "webhook-timestamp"),
        signature: header_text(&headers, "webhook-signature"),
        body: body.clone(),
    });
    match answer {
        Answer::Ok => StatusCode::NO_CONTENT.into_response(),
        Answer::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Answer::StatusRetryAfter(s, secs) => (
            StatusCode::from_u16(s).unwrap(),
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK.into_response()
        }
    }
}

impl Receiver {
    pub(crate) fn new_state(default: Answer) -> Arc<ReceiverState> {
        Arc::new(ReceiverState {
            key: Mutex::new(None),
            behaviour: Mutex::new(Behaviour {
                script: VecDeque::new(),
                default,
                fail_account_until: None,
            }),
            hits: Mutex::new(Vec::new()),
            bad_signatures: AtomicUsize::new(0),
        })
    }

    pub(crate) async fn start(default: Answer) -> Receiver {
        Self::serve(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            Self::new_state(default),
        )
    }

    /// A free address with nothing listening on it (yet).
    pub(crate) fn dead_addr() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    /// Starts serving `state` on `addr` (an endpoint coming back).
    pub(crate) async fn start_on(addr: SocketAddr, state: Arc<ReceiverState>) -> Receiver {
        Self::serve(tokio::net::TcpListener::bind(addr).await.unwrap(), state)
    }

    fn serve(listener: tokio::net::TcpListener, state: Arc<ReceiverState>) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            state,
            task: Some(task),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub(crate) fn set_secret(state: &ReceiverState, secret: &str) {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);
        *state.key.lock().unwrap() = Some(key);
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    pub(crate) fn delivered(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.answered == Answer::Ok)
            .collect()
    }

    pub(crate) fn bad_signatures(&self) -> usize {
        self.state.bad_signatures.load(Ordering::SeqCst)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

// ----------------------------------------------------------------- helpers

pub(crate) fn admin() -> (String, String) {
    api_key("admin", &["read", "write", "admin"], &["*"])
}

pub(crate) fn config(extra: &str) -> (String, String) {
    let (key, toml) = admin();
    (format!("{toml}{extra}"), key)
}

pub(crate) fn schedule(secs: &[u64]) -> String {
    let list: Vec<String> = secs.iter().map(|s| s.to_string()).collect();
    format!("[webhooks]\nretry_schedule_secs = [{}]\n", list.join(", "))
}

pub(crate) async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = http.request(method, url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

/// Registers a webhook; returns its id and secret.
pub(crate) async fn register(base: &str, key: &str, body: Value) -> (String, String) {
    let (status, resp, _) = call(
        &reqwest::Client::new(),
        reqwest::Method::POST,
        format!("{base}/v1/webhooks"),
        Some(key),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{resp}");
    (
        resp["data"]["id"].as_str().unwrap().to_string(),
        resp["data"]["secret"].as_str().unwrap().to_string(),
    )
}

pub(crate) async fn get_json(base: &str, path: &str, key: &str) -> Value {
    let (status, body, _) = call(
        &reqwest::Client::new(),
        reqwest::Method::GET,
        format!("{base}{path}"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one sample line, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// One session event, or a session with a message.
pub(crate) async fn ingest(store: &dyn Store, acc: &str, session_ext: &str, msg_ext: Option<&str>) {
    let messages = msg_ext
        .map(|m| vec![msg(session_ext, m, Role::Customer, "你好 👋", t(1))])
        .unwrap_or_default();
    store
        .ingest(
            &account(acc),
            &[change(session(session_ext, "C1"), messages)],
            None,
        )
        .await
        .unwrap();
}

/// Every event in the feed, as (seq, session_id).
pub(crate) async fn all_events(store: &dyn Store) -> Vec<(i64, String)> {
    store
        .read_events(&chat_gateway::store::EventQuery {
            after: 0,
            limit: 10_000,
            types: vec![],
            account: None,
            scope: Default::default(),
            until: None,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq.parse().unwrap(), e.session_id))
        .collect()
}

/// Checks `hits` hold every expected event exactly once (repeats only
/// under the same webhook-id), in seq order within each session.
pub(crate) fn assert_exactly_once_in_session_order(hits: &[Hit], expected: &[(i64, String)]) {
    let mut id_of_seq: HashMap<i64, String> = HashMap::new();
    let mut seq_of_id: HashMap<String, i64> = HashMap::new();
    for h in hits {
        let id = id_of_seq.entry(h.seq).or_insert_with(|| h.msg_id.clone());
        assert_eq!(
            *id, h.msg_id,
            "seq {} delivered under two webhook-ids",
            h.seq
        );
        let seq = seq_of_id.entry(h.msg_id.clone()).or_insert(h.seq);
        assert_eq!(*seq, h.seq, "webhook-id {} used for two events", h.msg_id);
    }
    let got: HashSet<i64> = hits.iter().map(|h| h.seq).collect();
    let want: HashSet<i64> = expected.iter().map(|(s, _)| *s).collect();
    assert_eq!(got, want, "delivered events differ from the log");
    let mut per_session: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut seen = HashSet::new();
    for h in hits {
        if seen.insert(h.seq) {
            per_session.entry(&h.session_id).or_default().push(h.seq);
        }
    }
    for (session, seqs) in per_session {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "session {session} out of order: {seqs:?}"
        );
    }
}

/// A gateway on an existing database (for restarts and replicas).
struct Replica {
    base: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    pub(crate) async fn start(db_url: &str, toml: &str) -> Replica {
        let mut config = chat_gateway::config::Config::parse(toml).unwrap();
        config.database.url = db_url.to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(chat_gateway::server::run(
            config,
            listener,
            shutdown.clone(),
            chat_gateway::server::RunOptions::default(),
        ));
        let http = reqwest::Client::new();
        wait_until(20, "replica ready", || async {
            matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status().is_success())
        })
        .await;
        Replica {
            base,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

// ------------------------------------------------------------------- tests

async fn every_event_arrives_once_in_session_order_after_downtime(db: Db) {
    let (toml, key) = config(&schedule(&[1; 15]));
    let gw = TestGateway::start(db, &toml).await;
    let addr = Receiver::dead_addr();
    let (_, secret) = register(
        &gw.base,
        &key,
        json!({"url": format!("http://{addr}/hook"), "events": ["*"], "accounts": ["*"]}),
    )
    .await;
    // Four sessions written in interleaved rounds while the endpoint is down.
    for round in 0..3 {
        for s in 0..4 {
            let sid = format!("S{s}");
            ingest(
                gw.store.as_ref(),
                "acc",
                &sid,
                Some(&format!("{sid}-m{round}")),
            )
            .await;
        }
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let state = Receiver::new_state(Answer::Ok);
    Receiver::set_secret(&state, &secret);
    let receiver = Receiver::start_on(addr, state).await;
    let expected = all_events(gw.store.as_ref()).await;
    assert!(expected.len() >= 16, "{expected:?}");
    wait_until(40, "every event delivered", || async {
        let got: HashSet<i64> = receiver.delivered().iter().map(|h| h.seq).collect();
        got.len() >= expected.len()
    })
    .await;
    assert_eq!(receiver.bad_signatures(), 0);
    assert_exactly_once_in_session_order(&receiver.delivered(), &expected);

    // The failed attempts while it was down are on record.
    let list = get_json(&gw.base, "/v1/webhooks", &key).await;
    let id = list["data"][0]["id"].as_str().unwrap();
    let attempts = get_json(
        &gw.base,
        &format!("/v1/webhooks/{id}/deliveries?limit=500"),
        &key,
    )
    .await;
    let items = attempts["data"].as_array().unwrap();
    assert!(items.iter().any(|d| d["status"] == "succeeded"));
    let failed = items
        .iter()
        .find(|d| d["status"] == "failed")
        .expect("the downtime left failed attempts");
    assert_eq!(failed["response_status"], Value::Null);
    assert!(failed["next_attempt_at"].is_string(), "{failed}");
    assert!(!failed["error"].as_str().unwrap().is_empty());

    let text = metrics(&gw.base).await;
    assert!(
        sample(
            &text,
            r#"chatgw_webhook_deliveries_total{outcome="succeeded"}"#
        ) >= expected.len() as f64,
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"chatgw_webhook_deliveries_total{outcome="retrying"}"#
        ) >= 1.0
    );
    assert!(
        sample(
            &text,
            r#"chatgw_webhook_delivery_failures_total{kind="connect"}"#
        ) >= 1.0
    );
    gw.stop().await;
}

async fn a_failing_event_holds_back_only_its_own_session(db: Db) {
    let (toml, key) = config(&schedule(&[1; 10]));
    let gw = TestGateway::start(db, &toml).await;
    let receiver = Receiver::start(Answer::Ok).await;
    let (_, secret) = register(&gw.base, &key, json!({"url": receiver.url()})).await;
    Receiver::set_secret(&receiver.state, &secret);
    let fail_until = Instant::now() + Duration::from_secs(3);
    receiver.state.behaviour.lock().unwrap().fail_account_until =
        Some(("acc-a".into(), fail_until));
    let started = Instant::now();
    for round in 0..3 {
        ingest(gw.store.as_ref(), "acc-a", "SA", Some(&format!("a{round}"))).await;
        ingest(gw.store.as_ref(), "acc-b", "SB", Some(&format!("b{round}"))).await;
    }
    let expected = all_events(gw.store.as_ref()).await;
    wait_until(30, "every event delivered", || async {
        let got: HashSet<i64> = receiver.delivered().iter().map(|h| h.seq).collect();
        got.len() >= expected.len()
    })
    .await;
    let delivered = receiver.delivered();
    assert_exactly_once_in_session_order(&delivered, &expected);
    // Session B went through while A was failing.
    let b_done = delivered
        .iter()
        .filter(|h| h.account == "acc-b")
        .map(|h| h.at)
        .max()
        .unwrap();
    assert!(
        b_done < fail_until && b_done - started < Duration::from_millis(2500),
        "session B waited for session A"
    );
    // Session A: nothing after its first event was tried before that
    // first event got through.
    let hits = receiver.hits();
    let a_first = hits
        .iter()
        .filter(|h| h.account == "acc-a")
        .map(|h| h.seq)
        .min()
        .unwrap();
    let a_first_ok = delivered.iter().find(|h| h.seq == a_first).unwrap().at;
    assert!(hits
        .iter()
        .filter(|h| h.account == "acc-a" && h.seq != a_first)
        .all(|h| h.at >= a_first_ok));
    assert!(a_first_ok >= fail_until);
    assert_eq!(receiver.bad_signatures(), 0);
    gw.stop().await;
}

async fn retries_follow_the_schedule_then_fail_visibly(db: Db) {
    let (toml, key) = config(&schedule(&[1, 1, 2]));
    let gw = TestGateway::start(db, &toml).await;
    let receiver = Receiver::start(Answer::Status(500)).await;
    let (id, secret) = register(&gw.base, &key, json!({"url": receiver.url()})).await;
    Receiver::set_secret(&receiver.state, &secret);
    ingest(gw.store.as_ref(), "acc", "S1", None).await;
    let deliveries = format!("/v1/webhooks/{id}/deliveries");
    wait_until(20, "four attempts recorded", || async {
        get_json(&gw.base, &deliveries, &key).await["data"]
            .as_array()
            .unwrap()
            .len()
            >= 4
    })
    .await;
    let hits = receiver.hits();
    assert_eq!(hits.len(), 4, "one attempt plus three retries");
    assert!(
        hits.iter().all(|h| h.msg_id == hits[0].msg_id),
        "webhook-id changed between retries"
    );
    let gaps: Vec<f64> = hits
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    for (gap, (low, high)) in gaps.iter().zip([(0.95, 2.0), (0.95, 2.0), (1.95, 3.2)]) {
        assert!(*gap >= low && *gap <= high, "retry gaps {gaps:?}");
    }
    let body = get_json(&gw.base, &deliveries, &key).await;
    let items = body["data"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(body["next_cursor"], Value::Null);
    let seq = hits[0].seq.to_string();
    for (i, d) in items.iter().enumerate() {
        assert_eq!(d["attempt"], 4 - i as i64, "newest first: {body}");
        assert_eq!(d["status"], "failed");
        assert_eq!(d["response_status"], 500);
        assert_eq!(d["event_seq"], seq.as_str());
        assert!(d["error"].as_str().unwrap().contains("500"));
        assert!(d["id"].is_string() && d["at"].as_str().unwrap().ends_with('Z'));
        if i == 0 {
            assert_eq!(d["next_attempt_at"], Value::Null, "the budget is spent");
        } else {
            assert!(d["next_attempt_at"].as_str().unwrap().ends_with('Z'));
        }
    }
    // Paging through the same list.
    let first = get_json(&gw.base, &format!("{deliveries}?limit=3"), &key).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = get_json(
        &gw.base,
        &format!("{deliveries}?limit=3&cursor={cursor}"),
        &key,
    )
    .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["attempt"], 1);
    assert_eq!(rest["next_cursor"], Value::Null);

    // The session is not stuck behind the failed event.
    receiver.state.behaviour.lock().unwrap().default = Answer::Ok;
    ingest(gw.store.as_ref(), "acc", "S1", Some("m1")).await;
    wait_until(10, "the next event of the session", || async {
        !receiver.delivered().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = metrics(&gw.base).await;
    assert_eq!(
        sample(
            &text,
            r#"chatgw_webhook_deliveries_total{outcome="retrying"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"chatgw_webhook_deliveries_total{outcome="failed"}"#
        ),
        1.0
    );
    assert!(
        sample(
            &text,
            r#"chatgw_webhook_deliveries_total{outcome="succeeded"}"#
        ) >= 1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"chatgw_webhook_delivery_failures_total{kind="http_status"}"#
        ),
        4.0
    );
    assert!(text.contains("chatgw_webhook_delivery_duration_seconds_bucket"));
    gw.stop().await;
}

async fn a_longer_retry_after_is_honoured(db: Db) {
    let (toml, key) = config(&schedule(&[1, 1]));
    let gw = TestGateway::start(db, &toml).await;
    let receiver = Receiver::start(Answer::Ok).await;
    receiver
        .state
        .behaviour
        .lock()
        .unwrap()
        .script
        .push_back(Answer::StatusRetryAfter(503, 3));
    let (_, secret) = register(&gw.base, &key, json!({"url": receiver.url()})).await;
    Receiver::set_secret(&receiver.state, &secret);
    ingest(gw.store.as_ref(), "acc", "S1", None).await;
    wait_until(20, "the retry", || async {
        !receiver.delivered().is_empty()
    })
    .await;
    let hits = receiver.hits();
    assert_eq!(hits.len(), 2);
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(2950), "retried after {gap:?}");
    gw.stop().await;
}

async fn a_dead_endpoint_does_not_slow_a_healthy_one(db: Db) {
    let (toml, key) = config(&schedule(&[1; 10]));
    let gw = TestGateway::start(db, &toml).await;
    let hanging = Receiver::start(Answer::Hang).await;
    let healthy = Receiver::start(Answer::Ok).await;
    let dead = Receiver::dead_addr();
    let (_, s1) = register(&gw.base, &key, json!({"url": hanging.url()})).await;
    Receiver::set_secret(&hanging.state, &s1);
    register(
        &gw.base,
        &key,
        json!({"url": format!("http://{dead}/hook")}),
    )
    .await;
    let (_, s2) = register(&gw.base, &key, json!({"url": healthy.url()})).await;
    Receiver::set_secret(&healthy.state, &s2);
    for i in 0..12 {
        let sid = format!("S{}", i % 4);
        let written = Instant::now();
        ingest(gw.store.as_ref(), "acc", &sid, Some(&format!("m{i}"))).await;
        let before = healthy.delivered().len();
        wait_until(5, "the healthy endpoint keeps up", || async {
            healthy.delivered().len() > before
        })
        .await;
        assert!(
            written.elapsed() < Duration::from_millis(1500),
            "healthy endpoint took {:?}",
            written.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected = all_events(gw.store.as_ref()).await;
    wait_until(10, "the healthy endpoint has everything", || async {
        let got: HashSet<i64> = healthy.delivered().iter().map(|h| h.seq).collect();
        got.len() >= expected.len()
    })
    .await;
    assert_exactly_once_in_session_order(&healthy.delivered(), &expected);
    assert!(hanging.delivered().is_empty());
    assert!(!hanging.hits().is_empty(), "the hanging endpoint was tried");
    assert_eq!(healthy.bad_signatures() + hanging.bad_signatures(), 0);
    gw.stop().await;
}

async fn gone_disables_the_webhook(db: Db) {
    let (toml, key) = config(&schedule(&[1, 1, 1]));
    let gw = TestGateway::start(db, &toml).await;
    let receiver = Receiver::start(Answer::Status(410)).await;
    let (id, secret) = register(&gw.base, &key, json!({"url": receiver.url()})).await;
    Receiver::set_secret(&receiver.state, &secret);
    ingest(gw.store.as_ref(), "acc", "S1", Some("m1")).await;
    wait_until(10, "the webhook is disabled", || async {
        get_json(&gw.base, &format!("/v1/webhooks/{id}"), &key).await["data"]["enabled"] == false
    })
    .await;
    let hook = get_json(&gw.base, &format!("/v1/webhooks/{id}"), &key).await;
    assert_eq!(hook["data"]["disabled_reason"], "gone", "{hook}");
    let body = get_json(&gw.base, &format!("/v1/webhooks/{id}/deliveries"), &key).await;
    let items = body["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["status"], "failed");
    assert_eq!(items[0]["response_status"], 410);
    assert_eq!(items[0]["next_attempt_at"], Value::Null);
    receiver.state.behaviour.lock().unwrap().default = Answer::Ok;
    ingest(gw.store.as_ref(), "acc", "S2", Some("m2")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        receiver.hits().len(),
        1,
        "a disabled webhook was called again"
    );
    let text = metrics(&gw.base).await;
    assert_eq!(
        sample(
            &text,
            r#"chatgw_webhook_deliveries_total{outcome="disabled"}"#
        ),
        1.0
    );
    gw.stop().await;
}

async fn filters_pick_event_types_and_accounts(db: Db) {
    let accounts = "[[accounts]]\nname = \"acc-a\"\nprovider = \"spark\"\nbase_url = \"http://127.0.0.1:9\"\n\
                    [[accounts]]\nname = \"acc-b\"\nprovider = \"spark\"\nbase_url = \"http://127.0.0.1:9\"\n";
    let (toml, key) = config(accounts);
    let gw = TestGateway::start(db, &toml).await;
    let receiver = Receiver::start(Answer::Ok).await;
    let (_, secret) = register(
        &gw.base,
        &key,
        json!({"url": receiver.url(), "events": ["message.created"], "accounts": ["acc-a"]}),
    )
    .await;
    Receiver::set_secret(&receiver.state, &secret);
    ingest(gw.store.as_ref(), "acc-b", "SB", Some("b1")).await;
    ingest(gw.store.as_ref(), "acc-a", "SA", Some("a1")).await;
    ingest(gw.store.as_ref(), "acc-a", "SA", Some("a2")).await;
    wait_until(10, "two messages", || async {
        receiver.delivered().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = receiver.delivered();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits
        .iter()
        .all(|h| h.account == "acc-a" && h.event_type == "message.created"));
    gw.stop().await;
}

async fn nothing_is_missed_across_restarts(db: Db) {
    let tdb = TestDb::new(db).await;
    let (toml, key) = config(&schedule(&[1; 5]));
    let receiver = Receiver::start(Answer::Ok).await;
    let first = Replica::start(&tdb.url, &toml).await;
    let (_, secret) = register(&first.base, &key, json!({"url": receiver.url()})).await;
    Receiver::set_secret(&receiver.state, &secret);
    let store = tdb.store().await;
    ingest(store.as_ref(), "acc", "S1", Some("m1")).await;
    wait_until(10, "first events", || async {
        !receiver.delivered().is_empty()
    })
    .await;
    first.stop().await;
    // Written while no gateway runs.
    ingest(store.as_ref(), "acc", "S1", Some("m2")).await;
    ingest(store.as_ref(), "acc", "S2", Some("m3")).await;
    let expected = all_events(store.as_ref()).await;
    let second = Replica::start(&tdb.url, &toml).await;
    wait_until(20, "events written while down", || async {
        let got: HashSet<i64> = receiver.delivered().iter().map(|h| h.seq).collect();
        got.len() >= expected.len()
    })
    .await;
    assert_exactly_once_in_session_order(&receiver.delivered(), &expected);
    assert_eq!(receiver.bad_signatures(), 0);
    second.stop().await;
}

async fn client_errors_have_their_status_and_code(db: Db) {
    let (admin_key, a) = admin();
    let (reader, r) = api_key("reader", &["read", "write"], &["*"]);
    let (scoped, s) = api_key("scoped", &["read", "admin"], &["spark-a"]);
    let accounts = "[[accounts]]\nname = \"spark-a\"\nprovider = \"spark\"\nbase_url = \"http://127.0.0.1:9\"\n\
                    [[accounts]]\nname = \"spark-b\"\nprovider = \"spark\"\nbase_url = \"http://127.0.0.1:9\"\n";
    let gw = TestGateway::start(db, &format!("{a}{r}{s}{accounts}")).await;
    let http = &gw.http;
    let post = |key: Option<&str>, body: Value| {
        let key = key.map(str::to_string);
        let url = gw.url("/v1/webhooks");
        async move { call(http, reqwest::Method::POST, url, key.as_deref(), Some(body)).await }
    };
    let (admin_key, reader, scoped) = (admin_key.as_str(), reader.as_str(), scoped.as_str());
    let ok_url = "http://127.0.0.1:9/hook";

    // 400s.
    for (body, what) in [
        (json!({"url": "ftp://example.com/x"}), "scheme"),
        (json!({"url": "not a url"}), "not a URL"),
        (json!({"url": ""}), "empty URL"),
        (json!({"url": "/relative/path"}), "relative URL"),
        (json!({}), "missing url"),
        (
            json!({"url": ok_url, "events": ["message.deleted"]}),
            "unknown event type",
        ),
        (json!({"url": ok_url, "events": []}), "no event types"),
        (
            json!({"url": ok_url, "accounts": ["nope"]}),
            "unknown account",
        ),
        (json!({"url": ok_url, "accounts": []}), "no accounts"),
        (json!({"url": ok_url, "secret": "mine"}), "unknown field"),
        (
            json!({"url": ok_url, "events": "message.created"}),
            "wrong type",
        ),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data/"}),
            "metadata address",
        ),
        (json!({"url": "http://169.254.10.1:8080/"}), "link-local v4"),
        (
            json!({"url": "http://168.63.129.16/"}),
            "Azure host endpoint",
        ),
        (json!({"url": "http://0.0.0.0:8080/"}), "unspecified v4"),
        (json!({"url": "http://[::]:8080/"}), "unspecified v6"),
        (
            json!({"url": "http://[::169.254.169.254]/"}),
            "IPv4-compatible metadata",
        ),
        (
            json!({"url": "http://[::ffff:169.254.169.254]/"}),
            "IPv4-mapped metadata",
        ),
        (
            json!({"url": "http://[64:ff9b::a9fe:a9fe]/"}),
            "NAT64 metadata",
        ),
        (
            json!({"url": "http://[2002:a9fe:a9fe::1]/"}),
            "6to4 metadata",
        ),
        (
            json!({"url": "http://[2002:a83f:8110::]/"}),
            "6to4 Azure host endpoint",
        ),
        (json!({"url": "http://[fe80::1]/"}), "link-local v6"),
        (
            json!({"url": "http://[fd00:ec2::254]/"}),
            "AWS IPv6 metadata",
        ),
    ] {
        let (status, body, _) = post(Some(admin_key), body).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{what}");
        assert!(body["error"]["request_id"].is_string());
    }
    let (status, body) = gw
        .post_raw("/v1/webhooks", Some(admin_key), "{\"url\": ")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    // A scoped key must name its accounts, and only its own.
    let (status, body, _) = post(Some(scoped), json!({"url": ok_url})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _, _) = post(
        Some(scoped),
        json!({"url": ok_url, "accounts": ["spark-b"]}),
    )
    .await;
    assert_eq!(status, 400);

    // 401 and 403, before the body is read.
    let (status, body, _) = post(None, json!({"url": ok_url})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = gw.post_raw("/v1/webhooks", Some(reader), "not json").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, body) = gw.get("/v1/webhooks", Some(reader)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = gw.get("/v1/webhooks", None).await;
    assert_eq!(status, 401);

    // A good one: 201 with the secret, shown only here.
    let (status, created, headers) = post(
        Some(admin_key),
        json!({"url": ok_url, "events": ["message.created", "session.closed"], "accounts": ["spark-a"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let data = &created["data"];
    let id = data["id"].as_str().unwrap();
    let secret = data["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(STANDARD.decode(&secret[6..]).unwrap().len(), 32);
    assert_eq!(data["url"], ok_url);
    assert_eq!(data["events"], json!(["message.created", "session.closed"]));
    assert_eq!(data["accounts"], json!(["spark-a"]));
    assert!(data["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        headers.get("location").unwrap().to_str().unwrap(),
        format!("/v1/webhooks/{id}")
    );
    let (status, star, _) = post(Some(admin_key), json!({"url": "http://localhost:9/x"})).await;
    assert_eq!(status, 201);
    assert_eq!(star["data"]["events"], json!(["*"]));
    assert_eq!(star["data"]["accounts"], json!(["*"]));
    let star_id = star["data"]["id"].as_str().unwrap();

    let (status, one) = gw.get(&format!("/v1/webhooks/{id}"), Some(admin_key)).await;
    assert_eq!(status, 200);
    assert_eq!(one["data"]["id"], id);
    assert!(one["data"].get("secret").is_none());
    let (status, list) = gw.get("/v1/webhooks", Some(admin_key)).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(list["data"][0]["id"], star_id, "newest first");
    assert_eq!(list["next_cursor"], Value::Null);
    let (_, page) = gw.get("/v1/webhooks?limit=1", Some(admin_key)).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page2) = gw
        .get(
            &format!("/v1/webhooks?limit=1&cursor={cursor}"),
            Some(admin_key),
        )
        .await;
    assert_eq!(page2["data"][0]["id"], id);
    for text in [one.to_string(), list.to_string(), page2.to_string()] {
        assert!(!text.contains(secret) && !text.contains("\"secret\""));
    }
    // The scoped key sees only the webhook within its accounts.
    let (_, scoped_list) = gw.get("/v1/webhooks", Some(scoped)).await;
    assert_eq!(scoped_list["data"].as_array().unwrap().len(), 1);
    let (status, _) = gw
        .get(&format!("/v1/webhooks/{star_id}"), Some(scoped))
        .await;
    assert_eq!(status, 404);

    // Bad list parameters.
    for q in ["limit=0", "limit=501", "cursor=garbage", "colour=blue"] {
        let (status, body) = gw.get(&format!("/v1/webhooks?{q}"), Some(admin_key)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{q}"
        );
        let (status, _) = gw
            .get(
                &format!("/v1/webhooks/{id}/deliveries?{q}"),
                Some(admin_key),
            )
            .await;
        assert_eq!(status, 400, "{q}");
    }

    // 404s.
    for path in ["/v1/webhooks/wh_nope", "/v1/webhooks/wh_nope/deliveries"] {
        let (status, body) = gw.get(path, Some(admin_key)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let (status, body, _) = call(
        http,
        reqwest::Method::DELETE,
        gw.url("/v1/webhooks/wh_nope"),
        Some(admin_key),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    // DELETE: 204, then gone.
    let (status, _, _) = call(
        http,
        reqwest::Method::DELETE,
        gw.url(&format!("/v1/webhooks/{id}")),
        Some(admin_key),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        gw.get(&format!("/v1/webhooks/{id}"), Some(admin_key))
            .await
            .0,
        404
    );
    assert_eq!(
        gw.get(&format!("/v1/webhooks/{id}/deliveries"), Some(admin_key))
            .await
            .0,
        404
    );
    gw.stop().await;

    // With allow_private_targets the metadata address is accepted.
    let open = TestGateway::start(
        db,
        &format!("{a}[webhooks]\nallow_private_targets = true\n"),
    )
    .await;
    let (status, body, _) = call(
        &open.http,
        reqwest::Method::POST,
        open.url("/v1/webhooks"),
        Some(admin_key),
        Some(json!({"url": "http://169.254.169.254/"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    open.stop().await;
}

on_both_backends!(
    every_event_arrives_once_in_session_order_after_downtime,
    a_failing_event_holds_back_only_its_own_session,
    retries_follow_the_schedule_then_fail_visibly,
    a_longer_retry_after_is_honoured,
    a_dead_endpoint_does_not_slow_a_healthy_one,
    gone_disables_the_webhook,
    filters_pick_event_types_and_accounts,
    nothing_is_missed_across_restarts,
    client_errors_have_their_status_and_code,
);

/// Two replicas on one PostgreSQL: one delivers at a time, and the other
/// takes over when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_deliver_each_event_once() {
    let tdb = TestDb::new(Db::Postgres).await;
    let (toml, key) = config(&schedule(&[1; 5]));
    let receiver = Receiver::start(Answer::Ok).await;
    let one = Replica::start(&tdb.url, &toml).await;
    let two = Replica::start(&tdb.url, &toml).await;
    let (_, secret) = register(&one.base, &key, json!({"url": receiver.url()})).await;
    Receiver::set_secret(&receiver.state, &secret);
    let store = tdb.store().await;
    for i in 0..10 {
        ingest(
            store.as_ref(),
            "acc",
            &format!("S{}", i % 3),
            Some(&format!("m{i}")),
        )
        .await;
    }
    let expected = all_events(store.as_ref()).await;
    wait_until(20, "every event", || async {
        receiver.delivered().len() >= expected.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = receiver.delivered();
    assert_eq!(hits.len(), expected.len(), "an event was delivered twice");
    assert_exactly_once_in_session_order(&hits, &expected);
    one.stop().await;
    for i in 10..14 {
        ingest(
            store.as_ref(),
            "acc",
            &format!("S{}", i % 3),
            Some(&format!("m{i}")),
        )
        .await;
    }
    let expected = all_events(store.as_ref()).await;
    wait_until(30, "the other replica delivers", || async {
        let got: HashSet<i64> = receiver.delivered().iter().map(|h| h.seq).collect();
        got.len() >= expected.len()
    })
    .await;
    assert_exactly_once_in_session_order(&receiver.delivered(), &expected);
    two.stop().await;
}

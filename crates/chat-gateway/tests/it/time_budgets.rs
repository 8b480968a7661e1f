//! A provider that hangs inside a request: the provider call gets what is
//! left of the request's budget (at most the account's
//! `request_timeout_secs`), so the answer is 504 `provider_timeout` in time,
//! never the server's own 503. Sends do not wait for the provider: 202, then
//! the outbox retries.

use std::time::{Duration, Instant};

use provider_sim::{FailNext, FaultAction, SimControl, SimProvider, SparkInject};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

/// Spark at `sim` with the given per-call limit; the server's own budget
/// is `server_secs`; fast outbox retries.
fn config(sim: &str, server_secs: u64, account_secs: u64) -> String {
    let auth = provider_sim::SimOptions::default()
        .spark_auth
        .map(|h| format!("headers = {{ {} = \"{}\" }}", h.name, h.value))
        .unwrap_or_default();
    format!(
        "[server]\nrequest_timeout_secs = {server_secs}\n\
         [outbox]\nretry_base_ms = 50\nretry_max_secs = 1\npoll_interval_ms = 200\nmax_attempts = 30\n\
         [[accounts]]\nname = \"spark\"\nprovider = \"spark\"\nbase_url = \"{sim}\"\n\
         poll_timeout_secs = 3\nrequest_timeout_secs = {account_secs}\n{auth}\n"
    )
}

async fn customer_session(gw: &TestGateway, sim: &SimControl, customer: &str) -> String {
    sim.spark_inject(SparkInject {
        customer_id: Some(customer.into()),
        agent_id: Some("1001".into()),
        text: Some("你好".into()),
        ..Default::default()
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = gw
            .get(&format!("/v1/sessions?customer_id={customer}"), None)
            .await;
        if let Some(id) = list["data"][0]["id"].as_str() {
            return id.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "session of {customer} never synced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hang(sim: &SimControl, path: &str) {
    sim.fail_next(
        SimProvider::Spark,
        FailNext {
            count: 1,
            path_prefix: Some(path.into()),
            action: FaultAction::Hang,
        },
    )
    .unwrap();
}

/// POSTs `body` to `path`; status, error code and how long it took.
async fn timed_post(gw: &TestGateway, path: &str, body: Value) -> (u16, Value, Duration) {
    let started = Instant::now();
    let resp = gw.http.post(gw.url(path)).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

fn assert_provider_timeout(
    what: &str,
    status: u16,
    body: &Value,
    took: Duration,
    within: Duration,
) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (504, Some("provider_timeout")),
        "{what}: {body}"
    );
    assert!(took < within, "{what}: answered after {took:?}");
    assert!(
        took > within.saturating_sub(Duration::from_millis(1500)),
        "{what}: answered after only {took:?}"
    );
}

/// The server's budget (3 s) is shorter than the account's (10 s): the
/// provider call gets the request's time left and answers 504 inside it.
async fn hanging_actions_answer_504_within_the_request_budget(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let gw = TestGateway::start(db, &config(sim.base_url(), 3, 10)).await;
    let sid = customer_session(&gw, &control, "C1").await;
    let budget = Duration::from_secs(3);

    hang(&control, "/session/close");
    let (status, body, took) =
        timed_post(&gw, &format!("/v1/sessions/{sid}/close"), json!({})).await;
    assert_provider_timeout("close", status, &body, took, budget);

    hang(&control, "/session/transfer");
    let (status, body, took) = timed_post(
        &gw,
        &format!("/v1/sessions/{sid}/transfer"),
        json!({"agent_id": "1002"}),
    )
    .await;
    assert_provider_timeout("transfer", status, &body, took, budget);

    // Restart needs a closed session: close it for real first.
    let (status, body, _) = timed_post(&gw, &format!("/v1/sessions/{sid}/close"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    hang(&control, "/session/restart");
    let (status, body, took) =
        timed_post(&gw, &format!("/v1/sessions/{sid}/restart"), json!({})).await;
    assert_provider_timeout("restart", status, &body, took, budget);

    // Nothing changed for the failed actions: the session is still closed.
    let (_, s) = gw.get(&format!("/v1/sessions/{sid}"), None).await;
    assert_eq!(s["data"]["status"], "closed");
    gw.stop().await;
    sim.shutdown().await;
}

/// The account's limit (2 s) is the shorter: it bounds the call.
async fn the_accounts_limit_bounds_a_call_when_shorter(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let gw = TestGateway::start(db, &config(sim.base_url(), 30, 2)).await;
    let sid = customer_session(&gw, &control, "C2").await;
    hang(&control, "/session/close");
    let (status, body, took) =
        timed_post(&gw, &format!("/v1/sessions/{sid}/close"), json!({})).await;
    assert_provider_timeout("close", status, &body, took, Duration::from_millis(2500));
    gw.stop().await;
    sim.shutdown().await;
}

/// A send never waits for the provider: 202 at once, then the outbox tries
/// again after the hung call times out, and the message is sent.
async fn a_send_to_a_hanging_provider_is_accepted_then_retried(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let gw = TestGateway::start(db, &config(sim.base_url(), 3, 1)).await;
    let sid = customer_session(&gw, &control, "C3").await;
    hang(&control, "/message/send");
    let (status, body, took) = timed_post(
        &gw,
        &format!("/v1/sessions/{sid}/messages"),
        json!({"kind": "text", "text": "稍等，马上为您查询"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(took < Duration::from_millis(500), "202 after {took:?}");
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let last = loop {
        let (_, m) = gw.get(&format!("/v1/messages/{id}"), None).await;
        if m["data"]["delivery"]["status"] == "sent" {
            break m;
        }
        assert!(Instant::now() < deadline, "never delivered: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let attempts = last["data"]["delivery"]["attempts"].as_u64().unwrap();
    assert!(attempts >= 2, "attempts {attempts}: {last}");
    let sent = control
        .spark_received()
        .unwrap()
        .sends
        .iter()
        .filter(|s| s.code == 0 && s.content == "稍等，马上为您查询")
        .count();
    assert_eq!(sent, 1);
    gw.stop().await;
    sim.shutdown().await;
}

on_both_backends!(
    hanging_actions_answer_504_within_the_request_budget,
    the_accounts_limit_bounds_a_call_when_shorter,
    a_send_to_a_hanging_provider_is_accepted_then_retried,
);
